package mcp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// dedupeServer is a real MCP server over loopback HTTP whose write tool
// executes each idempotency key once (the contract's re-dispatch relies on
// that) and counts executions.
type dedupeServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	seen  map[string]string // key → path written
	execs int
	sent  int // calls received, repeats included
}

func newDedupeServer(t *testing.T) *dedupeServer {
	d := &dedupeServer{seen: map[string]string{}}
	s := sdk.NewServer(&sdk.Implementation{Name: "files", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "write_file"}, func(_ context.Context, req *sdk.CallToolRequest, a pathArgs) (*sdk.CallToolResult, any, error) {
		key, _ := req.Params.Meta[MetaIdempotencyKey].(string)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.sent++
		if _, ok := d.seen[key]; !ok || key == "" {
			d.execs++
			d.seen[key] = a.Path
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "wrote " + d.seen[key]}}}, nil, nil
	})
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *sdk.CallToolRequest, a pathArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "contents of " + a.Path}}}, nil, nil
		})
	d.srv = httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *dedupeServer) counts() (execs, sent int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.execs, d.sent
}

// withRoot makes root the capability issuer the gateway trusts.
func withRoot(root *identity.Wallet) option {
	return func(c *Config, _ *map[string]budget.Limit) {
		orig := c.NewKernelConfig
		c.NewKernelConfig = func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
			kc, err := orig(reg)
			if err != nil {
				return kc, err
			}
			v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()},
				Revocations: capability.NewMemRevocationStore(nil), Registry: reg})
			if err != nil {
				return kc, err
			}
			kc.Authorizer = v
			return kc, nil
		}
	}
}

func withUpstream(url string) option {
	return func(c *Config, _ *map[string]budget.Limit) {
		c.Upstreams = map[string]Dialer{"files": HTTPUpstream(url, nil)}
	}
}

func withGovernance(g *GovernanceConfig) option {
	return func(c *Config, _ *map[string]budget.Limit) { c.Governance = g }
}

func issueBy(t testing.TB, root, w *identity.Wallet, actions ...string) string {
	tok, err := capability.Issue(root.Signer(), w.DID(), []capability.Grant{{Tool: "files", Actions: actions}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode()
}

// verifyGoverned checks a trace with the audit package's TGA verifiers and
// returns its machine.
func verifyGoverned(t *testing.T, g *Gateway, id string) *audit.ExecutionMachine {
	t.Helper()
	entries, err := g.TraceEntries(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, entries)
	if err != nil {
		t.Fatalf("execution log of %s: %v", id, err)
	}
	var arts [][]byte
	for _, e := range entries {
		var ent struct {
			Data json.RawMessage `json:"artifact_data"`
		}
		if err := json.Unmarshal(e, &ent); err != nil {
			t.Fatal(err)
		}
		arts = append(arts, ent.Data)
	}
	if err := audit.VerifyArtifactChain(arts...); err != nil {
		t.Fatalf("artifact chain of %s: %v", id, err)
	}
	return m
}

// traceIDs returns the id of the trace made for scope.
func traceIDs(t *testing.T, s TraceStore, scope string) string {
	t.Helper()
	id, err := s.ByScope(t.Context(), scope)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGovernedPolicy: with a policy supervisor a write runs as a four-step
// TGA trace that verifies (hash chains and state machine); a read is not
// governed; a denial is POLICY_DENIED and never reaches the upstream; a
// repeated key replays the trace's outcome.
func TestGovernedPolicy(t *testing.T) {
	store, err := OpenFileTraceStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := newDedupeServer(t)
	policy := SupervisorFunc(func(_ context.Context, r ActionRequest) (Verdict, error) {
		if strings.Contains(string(r.Args), "/etc") {
			return Verdict{Decision: DecisionDeny, Rationale: "no system files"}, nil
		}
		return Verdict{Decision: DecisionApprove, Rationale: "policy"}, nil
	})
	root, _ := identity.GenerateWallet("root")
	f := newFixture(t, withRoot(root), withUpstream(up.srv.URL), withGovernance(&GovernanceConfig{Store: store, Supervisor: policy}))
	alice := f.agent("t")
	cs := f.session(alice, issueBy(t, root, alice, "write_file", "read_file"))

	res, err := cs.CallTool(t.Context(), writeWith("g-1", map[string]any{"path": "/a"}))
	if err != nil || textOf(res) != "wrote /a" {
		t.Fatalf("governed write: %v %v", res, err)
	}
	id := traceIDs(t, store, idemKey(alice.DID(), "files", "write_file", "g-1"))
	if m := verifyGoverned(t, f.gw, id); m.State() != audit.StateCompleted || m.Seq() != 4 || m.Recovery() != audit.RecoveryReplayOnly {
		t.Fatalf("trace: %s seq %d", m.State(), m.Seq())
	}
	res, err = cs.CallTool(t.Context(), writeWith("g-1", map[string]any{"path": "/a"}))
	if err != nil || textOf(res) != "wrote /a" || res.Meta[MetaReplayed] != true {
		t.Fatalf("repeat: %v %v", res, err)
	}
	if _, err := cs.CallTool(t.Context(), writeWith("g-2", map[string]any{"path": "/etc/passwd"})); talosCode(t, err) != string(contracts.CodePolicyDenied) {
		t.Fatalf("denied write: %v", err)
	}
	did := traceIDs(t, store, idemKey(alice.DID(), "files", "write_file", "g-2"))
	if m := verifyGoverned(t, f.gw, did); m.State() != audit.StateDenied || m.Seq() != 2 {
		t.Fatalf("denied trace: %s", m.State())
	}
	if _, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/a"}}); err != nil {
		t.Fatal(err)
	}
	if execs, sent := up.counts(); execs != 1 || sent != 1 {
		t.Fatalf("upstream: %d executions, %d calls; want 1, 1", execs, sent)
	}
	if open, _ := store.Open(t.Context(), "", "", 10); len(open) != 0 {
		t.Fatalf("open traces: %v", open)
	}
}

// TestGovernedApprovalQueue: with human approval the call waits in the
// queue (GET /v1/admin/approvals) until an admin decides (POST
// /v1/admin/approvals/{id}); approve executes it once, deny refuses it,
// a second decision is a 409, and an expired request is denied.
func TestGovernedApprovalQueue(t *testing.T) {
	store, err := OpenFileTraceStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := newDedupeServer(t)
	root, _ := identity.GenerateWallet("root")
	f := newFixture(t, withRoot(root), withUpstream(up.srv.URL),
		withGovernance(&GovernanceConfig{Store: store, Supervisor: HumanApproval, Poll: 20 * time.Millisecond, ApprovalTimeout: time.Minute}))
	alice := f.agent("t")
	cs := f.session(alice, issueBy(t, root, alice, "write_file"))

	var (
		amu     sync.Mutex
		actions []string
	)
	mux := http.NewServeMux()
	f.gw.RegisterApprovals(mux, func(tool, action string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			amu.Lock()
			actions = append(actions, tool+":"+action)
			amu.Unlock()
			next(w, r)
		}
	}, func(context.Context) string { return "did:key:admin" })
	admin := httptest.NewServer(mux)
	t.Cleanup(admin.Close)

	type result struct {
		res *sdk.CallToolResult
		err error
	}
	call := func(key, path string) chan result {
		ch := make(chan result, 1)
		go func() {
			res, err := cs.CallTool(context.Background(), writeWith(key, map[string]any{"path": path}))
			ch <- result{res, err}
		}()
		return ch
	}
	pending := func(n int) []Approval {
		for {
			resp, err := http.Get(admin.URL + "/v1/admin/approvals?limit=10")
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Items []Approval `json:"items"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("list: %d %v", resp.StatusCode, err)
			}
			if len(page.Items) >= n {
				return page.Items
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	decide := func(id, body string) int {
		resp, err := http.Post(admin.URL+"/v1/admin/approvals/"+id, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	c1 := call("q-1", "/one")
	items := pending(1)
	if items[0].Principal != alice.DID().String() || items[0].Tool != "files.write_file" || items[0].State != audit.StatePending {
		t.Fatalf("pending item: %+v", items[0])
	}
	if execs, _ := up.counts(); execs != 0 {
		t.Fatal("executed before approval")
	}
	for _, bad := range []string{`{"decision":"maybe"}`, `{"decision":"approve","extra":1}`, `{"Decision":"approve"}`, `not json`} {
		if code := decide(items[0].ID, bad); code != 400 {
			t.Fatalf("bad body %s: %d", bad, code)
		}
	}
	if code := decide(items[0].ID, `{"decision":"approve","reason":"looks fine"}`); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	r1 := <-c1
	if r1.err != nil || textOf(r1.res) != "wrote /one" {
		t.Fatalf("approved call: %v %v", r1.res, r1.err)
	}
	if code := decide(items[0].ID, `{"decision":"deny"}`); code != 409 {
		t.Fatalf("second decision: %d", code)
	}
	if m := verifyGoverned(t, f.gw, items[0].ID); m.State() != audit.StateCompleted {
		t.Fatal(m.State())
	}

	c2 := call("q-2", "/two")
	items = pending(1)
	if code := decide(items[0].ID, `{"decision":"deny","reason":"no"}`); code != 200 {
		t.Fatalf("deny: %d", code)
	}
	if r2 := <-c2; talosCode(t, r2.err) != string(contracts.CodePolicyDenied) {
		t.Fatalf("denied call: %v", r2.err)
	}
	if execs, _ := up.counts(); execs != 1 {
		t.Fatalf("%d executions, want 1", execs)
	}
	if code := decide("01936a8b-4c2d-7000-8001-000000000001", `{"decision":"approve"}`); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	resp, _ := http.Get(admin.URL + "/v1/admin/approvals?limit=0")
	if resp.StatusCode != 400 {
		t.Fatalf("limit=0: %d", resp.StatusCode)
	}
	resp.Body.Close()
	amu.Lock()
	defer amu.Unlock()
	if len(actions) == 0 || actions[0] != "admin.approvals:read" || !contains(actions, "admin.approvals:write") {
		t.Fatalf("wrapped as %v", actions)
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// TestGovernedApprovalTimeout: a pending request is denied when its
// approval time is up.
func TestGovernedApprovalTimeout(t *testing.T) {
	store, err := OpenFileTraceStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := newDedupeServer(t)
	root, _ := identity.GenerateWallet("root")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, withRoot(root), withUpstream(up.srv.URL), withGovernance(&GovernanceConfig{
		Store: store, Supervisor: HumanApproval, Poll: 10 * time.Millisecond, ApprovalTimeout: time.Minute, Now: clock,
		AfterPersist: func(_ string, seq int64) {
			if seq == 1 {
				mu.Lock()
				now = now.Add(2 * time.Minute)
				mu.Unlock()
			}
		}}))
	alice := f.agent("t")
	cs := f.session(alice, issueBy(t, root, alice, "write_file"))
	if _, err := cs.CallTool(t.Context(), writeWith("t-1", map[string]any{"path": "/x"})); talosCode(t, err) != string(contracts.CodePolicyDenied) {
		t.Fatalf("expired request: %v", err)
	}
	id := traceIDs(t, store, idemKey(alice.DID(), "files", "write_file", "t-1"))
	if m := verifyGoverned(t, f.gw, id); m.State() != audit.StateDenied {
		t.Fatal(m.State())
	}
	if execs, _ := up.counts(); execs != 0 {
		t.Fatal("an expired request executed")
	}
}

// Environment of the crash helper (this test binary re-executed).
const (
	envHelperDir  = "TALOS_TGA_HELPER_DIR"
	envHelperURL  = "TALOS_TGA_HELPER_UPSTREAM"
	envHelperKeys = "TALOS_TGA_HELPER_SEEDS" // root seed hex, agent seed hex
	envCrashAfter = "TALOS_TGA_CRASH_AFTER"  // seq to block after (0: after the dispatch)
	envNoRedisp   = "TALOS_TGA_NO_REDISPATCH"
)

func TestMain(m *testing.M) {
	if os.Getenv(envHelperDir) != "" {
		os.Exit(crashHelper())
	}
	os.Exit(m.Run())
}

// crashHelper runs a governed gateway on the trace store in
// $TALOS_TGA_HELPER_DIR and makes one governed write; after persisting
// step $TALOS_TGA_CRASH_AFTER it prints "persisted N" and blocks until the
// parent kills it.
func crashHelper() int {
	t := &helperT{}
	crashAfter, _ := strconv.Atoi(os.Getenv(envCrashAfter))
	done := make(chan struct{})
	func() {
		defer close(done)
		root, agent := helperWallets(os.Getenv(envHelperKeys))
		store, err := OpenFileTraceStore(os.Getenv(envHelperDir))
		if err != nil {
			fmt.Println("error", err)
			return
		}
		gov := &GovernanceConfig{Store: store, Supervisor: SupervisorFunc(func(context.Context, ActionRequest) (Verdict, error) {
			return Verdict{Decision: DecisionApprove}, nil
		}), AfterPersist: func(_ string, seq int64) {
			if seq == int64(crashAfter) {
				fmt.Printf("persisted %d\n", seq)
				select {} // the parent's SIGKILL ends the process here
			}
		}}
		f := newFixture(t, withRoot(root), withUpstream(os.Getenv(envHelperURL)), withGovernance(gov))
		f.teams[agent.DID().String()] = "t"
		cs := f.session(agent, issueBy(t, root, agent, "write_file"))
		_, err = cs.CallTool(context.Background(), writeWith("crash-key", map[string]any{"path": "/crash"}))
		fmt.Println("call returned", err)
	}()
	<-done
	return 3
}

func helperWallets(seeds string) (root, agent *identity.Wallet) {
	a, b, _ := strings.Cut(seeds, ",")
	rs, _ := hex.DecodeString(a)
	as, _ := hex.DecodeString(b)
	root, _ = identity.WalletFromSeed(rs)
	agent, _ = identity.WalletFromSeed(as)
	return root, agent
}

// helperT is the testing.TB of the crash helper: failures print and end
// the process.
type helperT struct {
	testing.TB
	cleanups []func()
}

func (h *helperT) Helper()                    {}
func (h *helperT) Context() context.Context   { return context.Background() }
func (h *helperT) Cleanup(f func())           { h.cleanups = append(h.cleanups, f) }
func (h *helperT) Fatal(args ...any)          { fmt.Println(append([]any{"fatal"}, args...)...); os.Exit(4) }
func (h *helperT) Fatalf(f string, a ...any)  { fmt.Printf("fatal "+f+"\n", a...); os.Exit(4) }
func (h *helperT) TempDir() string            { d, _ := os.MkdirTemp("", "tga"); return d }
func (h *helperT) Logf(f string, args ...any) {}

// TestGovernedCrashRecovery kills (SIGKILL) a gateway process after each
// step of a governed write, restarts on the same trace store and checks
// that recovery follows the contract — supervise again, resume, re-dispatch
// the same tool call with its idempotency key, or replay only — that the
// upstream executed the write exactly once, that the chain verifies with
// the audit package's TGA verifier, and that the client's retry with its
// key gets the one result.
func TestGovernedCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	cases := []struct {
		name         string
		after        int64
		noRedispatch bool
		action       string // Recovered.Action; "" when nothing is open
		state        string
		sent         int // calls the upstream received
	}{
		{"after action_request", 1, false, "SUPERVISE", audit.StateCompleted, 1},
		{"after supervisor_decision", 2, false, "RESUME", audit.StateCompleted, 1},
		{"after tool_call", 3, false, audit.RecoveryRedispatch, audit.StateCompleted, 1},
		{"after dispatch", 0, false, audit.RecoveryRedispatch, audit.StateCompleted, 2},
		{"after dispatch, no redispatch", 0, true, audit.RecoveryRedispatch, audit.StateFailed, 1},
		{"after tool_effect", 4, false, "", audit.StateCompleted, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			up := newDedupeServer(t)
			root, rs := seededWallet(t)
			agent, as := seededWallet(t)

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envHelperDir+"="+dir, envHelperURL+"="+up.srv.URL,
				envHelperKeys+"="+rs+","+as, envCrashAfter+"="+strconv.FormatInt(tc.after, 10))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if want := fmt.Sprintf("persisted %d\n", tc.after); line != want {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper said %q, want %q", line, want)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("helper ended with %v, want killed", err)
			}

			// Restart on the same store.
			store, err := OpenFileTraceStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, withRoot(root), withUpstream(up.srv.URL), withGovernance(&GovernanceConfig{
				Store: store, NoRedispatch: tc.noRedispatch,
				Supervisor: SupervisorFunc(func(context.Context, ActionRequest) (Verdict, error) {
					return Verdict{Decision: DecisionApprove}, nil
				})}))
			f.teams[agent.DID().String()] = "t"
			rec, err := f.gw.Recover(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.action == "" && len(rec) != 0:
				t.Fatalf("recovered %+v, want nothing", rec)
			case tc.action != "" && (len(rec) != 1 || rec[0].Action != tc.action || rec[0].Err != nil || rec[0].State != tc.state):
				t.Fatalf("recovered %+v, want %s → %s", rec, tc.action, tc.state)
			}
			id := traceIDs(t, store, idemKey(agent.DID(), "files", "write_file", "crash-key"))
			m := verifyGoverned(t, f.gw, id)
			if m.State() != tc.state {
				t.Fatalf("state %s, want %s", m.State(), tc.state)
			}
			execs, sent := up.counts()
			// Exactly once, whoever dispatched.
			const wantExecs = 1
			if execs != wantExecs || sent != tc.sent {
				t.Fatalf("upstream: %d executions, %d calls; want %d, %d", execs, sent, wantExecs, tc.sent)
			}
			// The client retries with its key: answered from the trace.
			cs := f.session(agent, issueBy(t, root, agent, "write_file"))
			res, err := cs.CallTool(t.Context(), writeWith("crash-key", map[string]any{"path": "/crash"}))
			if tc.state == audit.StateFailed {
				if talosCode(t, err) != string(contracts.CodeInternal) {
					t.Fatalf("retry of a compensated call: %v", err)
				}
			} else if err != nil || textOf(res) != "wrote /crash" || res.Meta[MetaReplayed] != true {
				t.Fatalf("retry: %v %v", res, err)
			}
			if e2, s2 := up.counts(); e2 != execs || s2 != sent {
				t.Fatal("the retry reached the upstream")
			}
		})
	}
}

// seededWallet returns a wallet and its seed in hex, for the helper.
func seededWallet(t *testing.T) (*identity.Wallet, string) {
	t.Helper()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w, hex.EncodeToString(seed)
}

// TestGovernedWaitersForgotten: waiting calls leave nothing behind.
func TestGovernedWaitersForgotten(t *testing.T) {
	store, err := OpenFileTraceStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up := newDedupeServer(t)
	root, _ := identity.GenerateWallet("root")
	f := newFixture(t, withRoot(root), withUpstream(up.srv.URL), withGovernance(&GovernanceConfig{Store: store,
		Supervisor: SupervisorFunc(func(context.Context, ActionRequest) (Verdict, error) { return Verdict{Decision: DecisionApprove}, nil })}))
	alice := f.agent("t")
	cs := f.session(alice, issueBy(t, root, alice, "write_file"))
	for i := range 5 {
		if _, err := cs.CallTool(t.Context(), writeWith(fmt.Sprint("w-", i), map[string]any{"path": "/w"})); err != nil {
			t.Fatal(err)
		}
	}
	f.gw.gov.mu.Lock()
	n, l := len(f.gw.gov.waiters), len(f.gw.gov.locks)
	f.gw.gov.mu.Unlock()
	if n != 0 || l != 0 {
		t.Fatalf("%d waiter and %d lock entries left", n, l)
	}
}
