// Command load measures POST /v1/authorize through the whole HTTP stack of
// the example server (HTTP attestation, capability verification, RBAC,
// rate limit, audit append) on the loopback interface.
//
// It either starts a server binary itself (-server, with a fresh data
// directory and rate limits raised out of the way) or targets a running one
// (-url and -admin). It registers one agent per worker, issues each a
// capability, then sends at most -n attested authorize requests with -c
// workers for at most -duration, and prints requests/s and latency
// percentiles. Only loopback addresses are accepted as targets.
//
//	go build -o /tmp/talos-server ./examples/server
//	go run ./examples/load -server /tmp/talos-server -n 20000 -c 8 -duration 15s
//
// With -bare it measures, with the same client (attestation signing
// included), a bare net/http handler in a child process that reads the body
// and does one ed25519.Verify: the floor an authorizing server is compared
// with. With -compare K (and -server) it alternates K bare rounds and K server
// rounds in one run and prints the median of each and their ratio, so both
// numbers share the machine's load:
//
//	go run ./examples/load -server /tmp/talos-server -compare 3 -c 8 -duration 5s
//
// Across replicas (replicas.go): -targets a,b,c spreads every worker's
// requests round-robin over running servers that share PostgreSQL and
// Redis (or -server with -replicas N starts N of them on the stores named
// by TALOS_POSTGRES_URL and TALOS_REDIS_URL / TALOS_REDIS_CLUSTER_ADDRS in
// the environment). After the round it checks that the one audit log
// grew by a decision per request, that a request accepted by one replica
// is refused as a replay by the next, and with -spend-cap USD (A2A tasks
// of TALOS_A2A_TASK_COST_USD each against a hard team budget of that cap
// instead of authorize calls) that the team spent at most the cap:
//
//	go run ./examples/load -server /tmp/talos-server -replicas 3 -spend-cap 5 -c 12 -duration 10s
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talosgo/talos/identity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	server, url, admin string
	n, c               int
	duration           time.Duration
	bare               bool
	compare            int
	serveBare          string

	targets  []string // every replica's base URL; targets[0] == url
	replicas int      // with -server: how many to start
	spendCap string   // USD: A2A tasks against a hard team budget
	session  string   // admin session minted from admin (adminSession)
	team     string   // the workers' team, new each run (spend outlives a run in Redis)
}

func run() error {
	var o options
	flag.StringVar(&o.server, "server", "", "server binary to start on 127.0.0.1 (go build -o ... ./examples/server)")
	flag.StringVar(&o.url, "url", "", "base URL of a running server on loopback, e.g. http://127.0.0.1:8080")
	flag.StringVar(&o.admin, "admin", os.Getenv("TALOS_ADMIN_CREDENTIAL"), "admin bootstrap credential of the running server (or TALOS_ADMIN_CREDENTIAL)")
	flag.IntVar(&o.n, "n", 20000, "maximum number of requests per round (1 to 10,000,000)")
	flag.IntVar(&o.c, "c", 8, "concurrent workers, one agent each (1 to 256)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "maximum run time per round (at most 5m)")
	flag.BoolVar(&o.bare, "bare", false, "measure a bare net/http handler doing one ed25519.Verify (child process) instead of the server")
	flag.IntVar(&o.compare, "compare", 0, "with -server: alternate this many bare and server rounds (1 to 20) and print the ratio")
	flag.StringVar(&o.serveBare, "serve-bare", "", "internal: serve the bare handler on this loopback address")
	targets := flag.String("targets", "", "comma-separated base URLs of running replicas on loopback (instead of -url); requests go round-robin over them")
	flag.IntVar(&o.replicas, "replicas", 1, "with -server: start this many replicas (1 to 8) on the PostgreSQL and Redis named in the environment")
	flag.StringVar(&o.spendCap, "spend-cap", "", "USD: send A2A tasks against a hard team budget of this cap instead of authorize calls, and check the spend")
	flag.Parse()
	if *targets != "" {
		o.targets = strings.Split(*targets, ",")
		o.url = o.targets[0]
	}
	if o.serveBare != "" {
		return serveBare(o.serveBare)
	}
	if o.n < 1 || o.n > 10_000_000 || o.c < 1 || o.c > 256 || o.duration <= 0 || o.duration > 5*time.Minute || o.compare < 0 || o.compare > 20 {
		return errors.New("-n, -c, -duration or -compare out of range")
	}
	if o.compare > 0 && o.server == "" {
		return errors.New("-compare needs -server")
	}
	if o.replicas < 1 || o.replicas > 8 || (o.replicas > 1 && o.server == "") {
		return errors.New("-replicas is 1 to 8 and needs -server")
	}
	ctx := context.Background()
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: o.c * 2, MaxIdleConnsPerHost: o.c * 2, IdleConnTimeout: time.Minute},
		Timeout:   10 * time.Second,
	}
	if o.bare && o.compare == 0 {
		base, stop, err := startBare(ctx)
		if err != nil {
			return err
		}
		defer stop()
		workers, err := bareWorkers(o.c)
		if err != nil {
			return err
		}
		return report("bare", measure(ctx, client, []string{base}, "/bare", o, workers))
	}
	if o.server != "" {
		stop, err := startReplicas(ctx, &o)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.url == "" || o.admin == "" {
		return errors.New("give -server, or -url (or -targets) and -admin")
	}
	if len(o.targets) == 0 {
		o.targets = []string{o.url}
	}
	for _, u := range o.targets {
		if err := checkLoopback(u); err != nil {
			return err
		}
	}
	if err := adminSession(ctx, client, &o); err != nil {
		return err
	}
	o.team = fmt.Sprintf("load-%d", time.Now().UnixNano())
	if o.spendCap != "" && o.compare > 0 {
		return errors.New("-spend-cap and -compare do not mix")
	}
	if o.spendCap != "" {
		if err := admin(ctx, client, o, "PUT", "/v1/budgets/team:"+o.team, map[string]string{"limit_usd": o.spendCap, "mode": "hard", "period": "daily"}, nil); err != nil {
			return err
		}
	}
	workers := make([]*worker, o.c)
	for i := range workers {
		w, err := newWorker(ctx, client, o, i)
		if err != nil {
			return err
		}
		workers[i] = w
	}
	if o.compare == 0 {
		return replicaRound(ctx, client, o, workers)
	}
	base, stop, err := startBare(ctx)
	if err != nil {
		return err
	}
	defer stop()
	bw, err := bareWorkers(o.c)
	if err != nil {
		return err
	}
	var bareRates, serverRates []float64
	for i := range o.compare {
		rb := measure(ctx, client, []string{base}, "/bare", o, bw)
		if err := report(fmt.Sprintf("round %d bare", i+1), rb); err != nil {
			return err
		}
		rs := measure(ctx, client, []string{o.url}, "/v1/authorize", o, workers)
		if err := report(fmt.Sprintf("round %d server", i+1), rs); err != nil {
			return err
		}
		bareRates, serverRates = append(bareRates, rb.rate()), append(serverRates, rs.rate())
	}
	mb, ms := median(bareRates), median(serverRates)
	fmt.Printf("median requests/s: bare %.0f  server %.0f  ratio server/bare %.2f\n", mb, ms, ms/mb)
	return nil
}

// result is what one round measured.
type result struct {
	lat                     []time.Duration
	elapsed                 time.Duration
	workers                 int
	allowed, denied, failed int
	statuses                map[int]int
}

func (r result) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

// measure sends at most o.n requests with one goroutine per worker for at
// most o.duration, each worker's requests round-robin over bases, and
// collects what the workers saw.
func measure(ctx context.Context, client *http.Client, bases []string, path string, o options, workers []*worker) result {
	for _, w := range workers {
		w.lat, w.allowed, w.denied, w.failed, w.status = w.lat[:0], 0, 0, 0, map[int]int{}
	}
	var sent atomic.Int64
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	begin := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w.first; time.Now().Before(deadline) && sent.Add(1) <= int64(o.n); k++ {
				w.one(ctx, client, bases[k%len(bases)], path)
			}
		}()
	}
	wg.Wait()
	res := result{elapsed: time.Since(begin), workers: len(workers), statuses: map[int]int{}}
	for _, w := range workers {
		res.lat = append(res.lat, w.lat...)
		res.allowed += w.allowed
		res.denied += w.denied
		res.failed += w.failed
		for k, v := range w.status {
			res.statuses[k] += v
		}
	}
	slices.Sort(res.lat)
	return res
}

// report prints a round and fails it if any request failed.
func report(name string, r result) error {
	pct := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
	}
	fmt.Printf("%s: requests %d in %.2fs with %d workers: %.0f requests/s\n", name, len(r.lat), r.elapsed.Seconds(), r.workers, r.rate())
	fmt.Printf("%s: latency p50 %v  p90 %v  p99 %v  max %v\n", name, pct(0.50), pct(0.90), pct(0.99), pct(1))
	fmt.Printf("%s: allowed %d  denied %d  failed %d  statuses %v\n", name, r.allowed, r.denied, r.failed, r.statuses)
	if r.failed > 0 {
		return fmt.Errorf("%s: %d requests failed", name, r.failed)
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bareKey, bareMsg and bareSig are what the bare handler verifies: one
// Ed25519 signature over a message the size of an attestation's signing
// input, the same work the server's attestation check does once.
var (
	bareKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	bareMsg = bytes.Repeat([]byte("talos-bare-"), 24)
	bareSig = ed25519.Sign(bareKey, bareMsg)
)

// bareHandler reads the body (at most 1 MiB, like the server), does one
// ed25519.Verify and answers a decision-shaped JSON document.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	if !ed25519.Verify(bareKey.Public().(ed25519.PublicKey), bareMsg, bareSig) {
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"allowed":true}`)
}

// serveBare is the child process of -bare: the bare handler on addr.
func serveBare(addr string) error {
	if err := checkLoopback("http://" + addr); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bare", bareHandler)
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// startBare re-executes this program with -serve-bare on a free loopback
// port and waits until it answers.
func startBare(ctx context.Context) (base string, stop func(), err error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-serve-bare", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	base = "http://" + addr
	if err := waitReady(base); err != nil {
		stop()
		return "", nil, err
	}
	return base, stop, nil
}

// bareWorkers are workers for the bare handler: each signs its requests as
// an agent does (the client's cost is the same in both measurements).
func bareWorkers(n int) ([]*worker, error) {
	ws := make([]*worker, n)
	for i := range ws {
		w, err := identity.GenerateWallet(fmt.Sprintf("bare-%d", i))
		if err != nil {
			return nil, err
		}
		signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(map[string]string{"capability": "bare", "tool": "files", "action": "read"})
		ws[i] = &worker{signer: signer, body: body, status: map[int]int{}}
	}
	return ws, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(base string) error {
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if i == 100 {
			return errors.New(base + " did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return errors.New("-url must be http://127.0.0.1:port (loopback only)")
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("-url must be a loopback address (127.0.0.0/8, ::1 or localhost)")
	}
	return nil
}

// startServer runs the server binary on a free loopback port with a fresh
// data directory, reads its DID and admin credential from its output, and
// waits until it is ready.
func startServer(ctx context.Context, o *options) (stop func(), err error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "talos-load-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.server, "-data", dir+"/data", "-listen", addr, "-trace-exporter", "none", "-kek-rotation", "0")
	cmd.Env = append(os.Environ(), "TALOS_RATE_LIMITS=kernel.authorize=1000000/s,a2a.v1.rpc=1000000/s")
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	sc := bufio.NewScanner(out)
	for o.admin == "" && sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 1 && strings.HasPrefix(f[0], "talos_admin_") {
			o.admin = f[0]
		}
	}
	go io.Copy(io.Discard, out)
	if o.admin == "" {
		stop()
		return nil, errors.New("the server printed no admin credential")
	}
	base := "http://" + addr
	if err := waitReady(base); err != nil {
		stop()
		return nil, err
	}
	o.targets = append(o.targets, base)
	o.url = o.targets[0]
	return stop, nil
}

// worker is one agent: its wallet, attestation signer and capability, and
// what it measured.
type worker struct {
	signer *identity.AttestationSigner
	body   []byte
	first  int    // the worker's first target (workers start spread out)
	op     string // the attestation opcode of its requests
	token  string // the capability header (A2A tasks); "" for authorize
	sample *sentRequest

	lat                     []time.Duration
	allowed, denied, failed int
	status                  map[int]int
}

func newWorker(ctx context.Context, client *http.Client, o options, i int) (*worker, error) {
	w, err := identity.GenerateWallet(fmt.Sprintf("load-%d", i))
	if err != nil {
		return nil, err
	}
	did := w.DID().String()
	if err := admin(ctx, client, o, "PUT", "/v1/principals/"+did, map[string]any{"team_id": o.team}, nil); err != nil {
		return nil, err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := admin(ctx, client, o, "POST", "/v1/capabilities", map[string]any{
		"subject": did, "grants": []map[string]any{{"tool": "files", "actions": []string{"read"}}, {"tool": "a2a", "actions": []string{"a2a.send", "a2a.get", "a2a.invoke"}}}, "expires_in_seconds": 3600,
	}, &tok); err != nil {
		return nil, err
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		return nil, err
	}
	if o.spendCap != "" {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "1", "method": "SendMessage", "params": map[string]any{
			"message": map[string]any{"messageId": fmt.Sprintf("load-%d", i), "role": "user", "parts": []any{map[string]any{"text": "load"}}}}})
		return &worker{signer: signer, body: body, first: i, op: "a2a.v1.rpc", token: tok.Token, status: map[int]int{}}, nil
	}
	body, _ := json.Marshal(map[string]string{"capability": tok.Token, "tool": "files", "action": "read"})
	return &worker{signer: signer, body: body, first: i, op: "kernel.authorize", status: map[int]int{}}, nil
}

func admin(ctx context.Context, client *http.Client, o options, method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, o.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.session)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// one sends one attested authorize request and records its latency (signing
// included: it is part of what a client pays).
func (w *worker) one(ctx context.Context, client *http.Client, base, path string) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(w.body))
	if err != nil {
		w.failed++
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if w.token != "" {
		req.Header.Set("X-Talos-Capability", w.token)
	}
	op := w.op
	if op == "" {
		op = "kernel.authorize"
	}
	if err := w.signer.Sign(req, op); err != nil {
		w.failed++
		return
	}
	hdr := req.Header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		w.failed++
		return
	}
	var d struct {
		Allowed bool `json:"allowed"`
		Result  any  `json:"result"`
		Error   *struct {
			Data struct {
				TalosCode string `json:"talos_code"`
			} `json:"data"`
		} `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&d)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.lat = append(w.lat, time.Since(start))
	w.status[resp.StatusCode]++
	ok := err == nil && resp.StatusCode == 200
	if w.token != "" { // an A2A task: created, or refused by the budget
		switch {
		case err == nil && d.Error == nil && d.Result != nil:
			w.allowed++
			w.keep(base, path, hdr)
		case err == nil && d.Error != nil && d.Error.Data.TalosCode == "BUDGET_EXCEEDED":
			w.denied++
		default:
			w.failed++
		}
		return
	}
	switch {
	case !ok:
		w.failed++
	case d.Allowed:
		w.allowed++
		w.keep(base, path, hdr)
	default:
		w.denied++
	}
}
