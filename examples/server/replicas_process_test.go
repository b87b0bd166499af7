package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// propagationBound is the stated bound on how long an edit on one replica
// takes to be enforced on the others (issue 15: ≤ 1 s).
const propagationBound = time.Second

// A replicaProc is one server process of a three-replica test.
type replicaProc struct {
	url      string
	cmd      *exec.Cmd
	out, log *syncBuffer
	done     chan struct{}
}

// cluster is three server processes on one PostgreSQL database and one
// Redis (the Cluster when TALOS_TEST_REDIS_CLUSTER_ADDRS is set), in
// production mode, and an owner admin session valid on all of them.
type cluster struct {
	t        *testing.T
	replicas []*replicaProc
	session  string // an owner's admin session (shared store: any replica)
	routes   *talos.RouteTable
	// id makes the test's team names unique: budget spend lives in the
	// shared Redis (default key prefix) and outlives the test.
	id string
}

// team returns the test's team name for base.
func (c *cluster) team(base string) string { return base + "-" + c.id }

// buildServer builds this package's binary once into a temporary
// directory.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "talos-server")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freshDatabase creates a database of its own for the test (the
// processes use the default table names) and drops it at the end.
func freshDatabase(t *testing.T) string {
	t.Helper()
	base := testenv.PostgresURL(t)
	name := "talos_replicas_" + strings.ToLower(testenv.Unique(t))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startCluster starts three replicas: the first alone (it prints the
// bootstrap credential), then the other two; it bootstraps an owner and
// mints its session.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs three server processes")
	}
	pg := freshDatabase(t)
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"TALOS_PRODUCTION=true", "TALOS_TRACE_EXPORTER=none", "TALOS_POSTGRES_URL=" + pg,
		"TALOS_MASTER_KEY=" + contracts.EncodeBase64URL(randomBytes(32)),
		"TALOS_AUDIT_CHECKPOINT_INTERVAL=1s", "TALOS_RATE_LIMITS=a2a.v1.rpc=1000/s,kernel.authorize=1000/s",
	}
	if addrs := testenv.RedisClusterAddrs(); len(addrs) > 0 {
		env = append(env, "TALOS_REDIS_CLUSTER_ADDRS="+strings.Join(addrs, ","))
		t.Cleanup(func() {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			defer c.Close()
			c.Del(context.Background(), "talos:notify:versions")
		})
	} else {
		if testenv.RedisURL() == "" {
			testenv.Redis(t) // skips, or fails under TALOS_REQUIRE_SERVICES
		}
		env = append(env, "TALOS_REDIS_URL="+testenv.RedisURL())
	}
	bin := buildServer(t)
	c := &cluster{t: t, id: fmt.Sprintf("%x", randomBytes(6))}
	var err error
	if c.routes, err = talos.NewRouteTable(attestedRoutes()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := startReplica(t, bin, env, i)
		c.replicas = append(c.replicas, r)
		if i == 0 {
			r.waitReady(t)
		}
	}
	for _, r := range c.replicas[1:] {
		r.waitReady(t)
	}
	cred := parseCredential(c.replicas[0].out.String())
	if cred == "" {
		t.Fatalf("no bootstrap credential printed:\n%s", c.replicas[0].out.String())
	}
	w, err := identity.GenerateWallet("owner")
	if err != nil {
		t.Fatal(err)
	}
	owner := admintest.SignerFor(t, w, admin.RoleOwner)
	if st, body := c.rawDo(0, "POST", "/v1/admin/bootstrap", "Bearer "+cred, fmt.Appendf(nil, `{"did":%q}`, w.DID().String()), nil); st != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", st, body)
	}
	// The session is minted on replica 1: sessions live in the shared store.
	req, _ := http.NewRequest("POST", c.replicas[1].url+"/v1/admin/sessions", bytes.NewReader([]byte(`{"ttl_seconds":3600}`)))
	req.Header.Set("Content-Type", "application/json")
	if err := owner.Sign(req); err != nil {
		t.Fatal(err)
	}
	var sess admin.SessionResponse
	if st := sendReq(t, req, &sess); st != http.StatusCreated || sess.Token == "" {
		t.Fatalf("session: %d", st)
	}
	c.session = sess.Token
	return c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func startReplica(t *testing.T, bin string, env []string, i int) *replicaProc {
	t.Helper()
	addr := freePort(t)
	r := &replicaProc{url: "http://" + addr, out: &syncBuffer{}, log: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin)
	r.cmd.Env = append(append([]string{}, env...),
		"TALOS_LISTEN="+addr, "TALOS_DATA_DIR="+filepath.Join(t.TempDir(), fmt.Sprintf("replica-%d", i)))
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("replica %d log:\n%s", i, r.log.String())
		}
	})
	return r
}

func (r *replicaProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("replica exited:\n%s", r.log.String())
		default:
		}
		resp, err := http.Get(r.url + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("replica not ready:\n%s", r.log.String())
}

// sendReq sends req and decodes a JSON answer into v (when non-nil).
func sendReq(t *testing.T, req *http.Request, v any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp, v)
}

// rawDo sends a request to replica i with an Authorization header.
func (c *cluster) rawDo(i int, method, path, auth string, body []byte, v any) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.replicas[i].url+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil && len(raw) > 0 {
		json.Unmarshal(raw, v)
	}
	return resp.StatusCode, string(raw)
}

// admin sends an admin request to replica i with the owner's session.
func (c *cluster) admin(i int, method, path string, body []byte, v any) int {
	c.t.Helper()
	st, _ := c.rawDo(i, method, path, "Bearer "+c.session, body, v)
	return st
}

// mustAdmin is admin that fails the test on a status other than want.
func (c *cluster) mustAdmin(i int, method, path, body string, want int, v any) {
	c.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	st, raw := c.rawDo(i, method, path, "Bearer "+c.session, b, v)
	if st != want {
		c.t.Fatalf("%s %s on replica %d: %d %s", method, path, i, st, raw)
	}
}

// agent makes an agent (registered on replica 0 in team) whose client
// attests with the server's route table; on(i) talks to replica i.
func (c *cluster) agent(name, team string) *procAgent {
	c.t.Helper()
	w, err := identity.GenerateWallet(name)
	if err != nil {
		c.t.Fatal(err)
	}
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		c.t.Fatal(err)
	}
	a := &procAgent{c: c, w: w, did: w.DID().String(), team: team, signer: s}
	c.mustAdmin(0, "PUT", "/v1/principals/"+a.did, fmt.Sprintf(`{"team_id":%q}`, team), http.StatusOK, nil)
	return a
}

type procAgent struct {
	c      *cluster
	w      *identity.Wallet
	did    string
	team   string
	signer *identity.AttestationSigner
}

// on returns the agent helper of the package's tests bound to replica i.
func (a *procAgent) on(i int) *agent {
	return &agent{
		t: a.c.t, w: a.w, did: a.did, team: a.team, signer: a.signer, base: a.c.replicas[i].url,
		client: &http.Client{Transport: &identity.AttestingTransport{Signer: a.signer, Routes: a.c.routes, Base: http.DefaultTransport}, Timeout: 20 * time.Second},
	}
}

// issue issues a capability for a on replica i.
func (c *cluster) issue(i int, subject string, grants ...capability.Grant) tokenBody {
	c.t.Helper()
	raw, _ := json.Marshal(issueRequest{Subject: subject, Grants: grants, ExpiresIn: 3600})
	var tok tokenBody
	c.mustAdmin(i, "POST", "/v1/capabilities", string(raw), http.StatusCreated, &tok)
	return tok
}

// observe waits until cond holds on every replica but the editor's and
// returns the slowest delay since start; it fails after 10 s.
func (c *cluster) observe(what string, editor int, start time.Time, cond func(i int) bool) time.Duration {
	c.t.Helper()
	var slowest time.Duration
	for i := range c.replicas {
		if i == editor {
			continue
		}
		d := waitUntil(c.t, fmt.Sprintf("%s on replica %d", what, i), start, func() bool { return cond(i) })
		slowest = max(slowest, d)
	}
	c.t.Logf("%-28s edited on replica %d, enforced on the others after %v", what, editor, slowest.Round(100*time.Microsecond))
	return slowest
}

// TestThreeReplicasPropagation: three server processes; an edit on one is
// enforced on the others within propagationBound: a budget PUT, a
// principal deletion, an RBAC binding, a capability revocation and a
// budget config document.
func TestThreeReplicasPropagation(t *testing.T) {
	c := startCluster(t)
	var delays []time.Duration
	note := func(d time.Duration) { delays = append(delays, d) }

	// Budget PUT on replica 0: GET on the others (was 404 until restart).
	start := time.Now()
	teamR, teamD := c.team("team-r"), c.team("team-d")
	c.mustAdmin(0, "PUT", "/v1/budgets/team:"+teamR, `{"limit_usd":"5","mode":"hard","period":"daily"}`, http.StatusOK, nil)
	note(c.observe("budget PUT", 0, start, func(i int) bool {
		var b map[string]any
		return c.admin(i, "GET", "/v1/budgets/team:"+teamR, nil, &b) == http.StatusOK && b["limit_usd"] == "5"
	}))

	// A budget config document on replica 0 caps dave's team at 1.5 tasks;
	// after it reached them, replica 1 runs one task and replica 2 is
	// refused the second (before any RBAC binding: dave is bound to none).
	dave := c.agent("dave", teamD)
	td := c.issue(0, dave.did, grant(a2a.Tool, "a2a.send", "a2a.get", "a2a.invoke"))
	start = time.Now()
	doc := "cap-" + c.id
	c.mustAdmin(0, "PUT", "/v1/config/budget/"+doc, fmt.Sprintf(`{"id":%q,"scope_type":"team","scope_id":%q,"period":"daily","max_usd":0.0015}`, doc, teamD), http.StatusCreated, nil)
	note(c.observe("budget config document", 0, start, func(i int) bool {
		var b map[string]any
		return c.admin(i, "GET", "/v1/budgets/team:"+teamD, nil, &b) == http.StatusOK && b["limit_usd"] == "0.0015"
	}))
	msg := map[string]any{"message": map[string]any{"messageId": "m1", "role": "user", "parts": []any{map[string]any{"text": "hi"}}}}
	dave.on(1).rpc("/rpc", td.Token, "SendMessage", msg).task(t, "first task, replica 1")
	if r := dave.on(2).rpc("/rpc", td.Token, "SendMessage", msg); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("second task on replica 2 over the document's budget: %+v", r.Error)
	}

	// A principal cached by replicas 1 and 2, deleted on replica 0.
	bob := c.agent("bob", teamR)
	tb := c.issue(0, bob.did, grant("files", "read"))
	for i := 1; i < 3; i++ {
		if d := authorize(t, bob.on(i), tb.Token, "files", "read"); !d.Allowed {
			t.Fatalf("bob on replica %d: %+v", i, d)
		}
	}
	start = time.Now()
	c.mustAdmin(0, "DELETE", "/v1/principals/"+bob.did, "", http.StatusOK, nil)
	note(c.observe("principal DELETE", 0, start, func(i int) bool {
		var eb errBody
		st := bob.on(i).call("POST", "/v1/authorize", authorizeRequest{Capability: tb.Token, Tool: "files", Action: "read"}, &eb)
		return st == http.StatusUnauthorized && eb.Code == string(contracts.CodeAuthInvalid)
	}))

	// An RBAC binding on replica 2: an unbound principal is denied on 0, 1.
	alice := c.agent("alice", teamR)
	carol := c.agent("carol", teamR)
	ta := c.issue(0, alice.did, grant("files", "read"))
	tc := c.issue(0, carol.did, grant("files", "read"))
	for i := range 3 {
		if d := authorize(t, carol.on(i), tc.Token, "files", "read"); !d.Allowed {
			t.Fatalf("carol before bindings on replica %d: %+v", i, d)
		}
	}
	c.mustAdmin(2, "PUT", "/v1/rbac/roles/reader", `{"permissions":["files.read"]}`, http.StatusOK, nil)
	start = time.Now()
	c.mustAdmin(2, "PUT", "/v1/rbac/bindings/b1", fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, alice.did), http.StatusOK, nil)
	note(c.observe("RBAC binding PUT", 2, start, func(i int) bool {
		d := authorize(t, carol.on(i), tc.Token, "files", "read")
		return !d.Allowed && d.Reason == string(capability.ReasonRBACDenied)
	}))
	for i := range 3 {
		if d := authorize(t, alice.on(i), ta.Token, "files", "read"); !d.Allowed {
			t.Fatalf("bound alice on replica %d: %+v", i, d)
		}
	}

	// A revocation on replica 1.
	start = time.Now()
	c.mustAdmin(1, "POST", "/v1/capabilities/revocations", string(mustJSON(revokeRequest{CapabilityHash: ta.CapabilityHash})), http.StatusOK, nil)
	note(c.observe("capability revocation", 1, start, func(i int) bool {
		d := authorize(t, alice.on(i), ta.Token, "files", "read")
		return !d.Allowed && d.Reason == string(capability.ReasonRevoked)
	}))

	sort.Slice(delays, func(i, k int) bool { return delays[i] < delays[k] })
	t.Logf("propagation delays (slowest replica per edit): %v; bound %v", delays, propagationBound)
	if slowest := delays[len(delays)-1]; slowest > propagationBound {
		// Reported, not a timing assertion on a shared machine: the
		// bound is the version read's period, met when messages are lost.
		t.Logf("WARNING: slowest propagation %v exceeded the %v bound", slowest, propagationBound)
	}
}

// TestThreeReplicasReplayAndSharedBudget: an attested request accepted by
// one replica is refused when replayed on another, and a shared hard
// budget is not overspent by concurrent tasks spread over the three.
func TestThreeReplicasReplayAndSharedBudget(t *testing.T) {
	c := startCluster(t)
	teamE := c.team("team-e")
	erin := c.agent("erin", teamE)
	te := c.issue(0, erin.did, grant("files", "read"), grant(a2a.Tool, "a2a.send", "a2a.get", "a2a.invoke"))

	// Replay: the same signed bytes, accepted by 0, refused by 1 and 2.
	body, _ := json.Marshal(authorizeRequest{Capability: te.Token, Tool: "files", Action: "read"})
	req, _ := http.NewRequest("POST", c.replicas[0].url+"/v1/authorize", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	op, err := c.routes.Opcode(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := erin.signer.Sign(req, op); err != nil {
		t.Fatal(err)
	}
	var d decisionBody
	if st := sendReq(t, req, &d); st != http.StatusOK || !d.Allowed {
		t.Fatalf("original on replica 0: %d %+v", st, d)
	}
	for i := 1; i < 3; i++ {
		replay, _ := http.NewRequest("POST", c.replicas[i].url+"/v1/authorize", bytes.NewReader(body))
		replay.Header = req.Header.Clone()
		var eb errBody
		if st := sendReq(t, replay, &eb); st != http.StatusConflict || eb.Code != string(contracts.CodeReplayDetected) {
			t.Fatalf("replay on replica %d: %d %+v", i, st, eb)
		} else {
			t.Logf("replay on replica %d refused: %d %s", i, st, eb.Code)
		}
	}

	// A hard team budget of 20 tasks (0.001 USD each); 60 concurrent
	// tasks round-robin over the replicas.
	c.mustAdmin(1, "PUT", "/v1/budgets/team:"+teamE, `{"limit_usd":"0.02","mode":"hard","period":"daily"}`, http.StatusOK, nil)
	waitUntil(t, "budget on every replica", time.Now(), func() bool {
		for i := range 3 {
			var b map[string]any
			if c.admin(i, "GET", "/v1/budgets/team:"+teamE, nil, &b) != http.StatusOK || b["limit_usd"] != "0.02" {
				return false
			}
		}
		return true
	})
	var (
		mu               sync.Mutex
		ok2, over, other int
		wg               sync.WaitGroup
	)
	for n := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := map[string]any{"message": map[string]any{"messageId": fmt.Sprintf("m%d", n), "role": "user", "parts": []any{map[string]any{"text": "x"}}}}
			r := erin.on(n%3).rpc("/rpc", te.Token, "SendMessage", msg)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Error == nil:
				ok2++
			case r.Error.Data.TalosCode == string(contracts.CodeBudgetExceeded):
				over++
			default:
				other++
				t.Errorf("task %d: %+v", n, r.Error)
			}
		}()
	}
	wg.Wait()
	var b map[string]any
	c.mustAdmin(2, "GET", "/v1/budgets/team:"+teamE, "", http.StatusOK, &b)
	t.Logf("60 concurrent tasks over 3 replicas: %d ran, %d refused BUDGET_EXCEEDED, %d other; budget %v", ok2, over, other, b)
	if ok2 > 20 || ok2+over != 60 || other != 0 {
		t.Fatalf("shared hard budget of 20 tasks: %d ran, %d refused, %d other", ok2, over, other)
	}
	if b["used_usd"] != "0.02" && ok2 == 20 {
		t.Fatalf("used %v after 20 tasks", b["used_usd"])
	}
}
