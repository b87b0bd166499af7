package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/identity"
)

// sentRequest is one request a replica accepted, kept to replay it on
// another replica.
type sentRequest struct {
	base, path string
	header     http.Header
	body       []byte
}

// keep records the first accepted request of the worker.
func (w *worker) keep(base, path string, h http.Header) {
	if w.sample == nil {
		w.sample = &sentRequest{base: base, path: path, header: h, body: w.body}
	}
}

// startReplicas starts o.replicas server processes (startServer each) on
// the stores the environment names; they share a generated master key
// unless TALOS_MASTER_KEY is set. The first one prints the bootstrap
// credential, so the database must be fresh (or -admin given).
func startReplicas(ctx context.Context, o *options) (stop func(), err error) {
	if o.replicas > 1 {
		if os.Getenv("TALOS_POSTGRES_URL") == "" || (os.Getenv("TALOS_REDIS_URL") == "" && os.Getenv("TALOS_REDIS_CLUSTER_ADDRS") == "") {
			return nil, errors.New("-replicas needs TALOS_POSTGRES_URL and TALOS_REDIS_URL or TALOS_REDIS_CLUSTER_ADDRS in the environment")
		}
		if os.Getenv("TALOS_MASTER_KEY") == "" {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return nil, err
			}
			os.Setenv("TALOS_MASTER_KEY", base64.RawURLEncoding.EncodeToString(key))
		}
	}
	var stops []func()
	stop = func() {
		var wg sync.WaitGroup
		for _, s := range stops {
			wg.Add(1)
			go func() { defer wg.Done(); s() }()
		}
		wg.Wait()
	}
	for range o.replicas {
		s, err := startServer(ctx, o)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

// adminSession turns -admin into an admin session: a talos_session_ token
// is used as it is; a bootstrap credential is spent on a fresh owner
// identity, whose attested POST /v1/admin/sessions mints the session.
func adminSession(ctx context.Context, client *http.Client, o *options) error {
	if strings.HasPrefix(o.admin, "talos_session_") {
		o.session = o.admin
		return nil
	}
	w, err := identity.GenerateWallet("load-owner")
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"did": w.DID().String()})
	req, err := http.NewRequestWithContext(ctx, "POST", o.url+"/v1/admin/bootstrap", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.admin)
	req.Header.Set("Content-Type", "application/json")
	if err := roundTrip(client, req, http.StatusCreated, nil); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		return err
	}
	req, err = http.NewRequestWithContext(ctx, "POST", o.url+"/v1/admin/sessions", strings.NewReader(`{"ttl_seconds":28800}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, "admin"); err != nil {
		return err
	}
	var sess struct {
		Token string `json:"token"`
	}
	if err := roundTrip(client, req, http.StatusCreated, &sess); err != nil {
		return fmt.Errorf("admin session: %w", err)
	}
	o.session = sess.Token
	return nil
}

func roundTrip(client *http.Client, req *http.Request, want int, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// auditSize reads the tree size of base's signed checkpoint (its second
// line).
func auditSize(ctx context.Context, client *http.Client, base string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/audit/checkpoint", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<16))
	for i := 0; sc.Scan(); i++ {
		if i == 1 {
			return strconv.ParseUint(sc.Text(), 10, 64)
		}
	}
	return 0, errors.New("audit checkpoint: no tree size")
}

// replicaRound runs the measured round over o.targets, then checks what
// issue 15 asks of replicas: every decision in the one audit log, a
// replay refused by another replica, and (with -spend-cap) no overspend.
func replicaRound(ctx context.Context, client *http.Client, o options, workers []*worker) error {
	path := "/v1/authorize"
	if o.spendCap != "" {
		path = "/rpc"
	}
	before, err := auditSize(ctx, client, o.targets[0])
	if err != nil {
		return err
	}
	name := "server"
	if len(o.targets) > 1 {
		name = fmt.Sprintf("%d replicas", len(o.targets))
	}
	r := measure(ctx, client, o.targets, path, o, workers)
	if err := report(name, r); err != nil {
		return err
	}
	after, err := auditSize(ctx, client, o.targets[len(o.targets)-1])
	if err != nil {
		return err
	}
	decisions := uint64(r.allowed + r.denied)
	fmt.Printf("%s: audit log (read on %s) grew by %d entries for %d decisions\n", name, o.targets[len(o.targets)-1], after-before, decisions)
	if after-before < decisions || (o.spendCap == "" && after-before != decisions) {
		return fmt.Errorf("%s: %d audit entries for %d decisions", name, after-before, decisions)
	}
	if len(o.targets) > 1 {
		if err := checkReplay(ctx, client, o, workers); err != nil {
			return err
		}
	}
	if o.spendCap != "" {
		var b struct {
			Used  string `json:"used_usd"`
			Limit string `json:"limit_usd"`
		}
		if err := admin(ctx, client, o, "GET", "/v1/budgets/team:"+o.team, nil, &b); err != nil {
			return err
		}
		used, err1 := budget.ParseUSD(b.Used)
		capUSD, err2 := budget.ParseUSD(o.spendCap)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("budget: used %q, cap %q", b.Used, o.spendCap)
		}
		fmt.Printf("%s: hard team budget %s USD: %d tasks ran, %d refused BUDGET_EXCEEDED, spent %s USD\n", name, b.Limit, r.allowed, r.denied, b.Used)
		if used > capUSD {
			return fmt.Errorf("%s: spent %s USD over the %s USD cap", name, b.Used, o.spendCap)
		}
	}
	return nil
}

// checkReplay sends a request one replica accepted, byte for byte, to the
// next replica: it must be refused (409 REPLAY_DETECTED).
func checkReplay(ctx context.Context, client *http.Client, o options, workers []*worker) error {
	for _, w := range workers {
		s := w.sample
		if s == nil {
			continue
		}
		next := o.targets[0]
		for i, t := range o.targets {
			if t == s.base {
				next = o.targets[(i+1)%len(o.targets)]
			}
		}
		req, err := http.NewRequestWithContext(ctx, "POST", next+s.path, bytes.NewReader(s.body))
		if err != nil {
			return err
		}
		req.Header = s.header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !bytes.Contains(b, []byte("REPLAY_DETECTED")) {
			return fmt.Errorf("a request accepted by %s replayed on %s: %d %s", s.base, next, resp.StatusCode, b)
		}
		fmt.Printf("replay: a request accepted by %s, replayed on %s: %d REPLAY_DETECTED\n", s.base, next, resp.StatusCode)
		return nil
	}
	return errors.New("replay: no accepted request to replay")
}
