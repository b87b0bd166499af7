package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

type fixture struct {
	srv         *httptest.Server
	root, agent *identity.Wallet
	other       *identity.Wallet
	log         *audit.Log
	tokA, tokO  string
	tokL        string
	handler     *RPCHandler
	mux         http.Handler
	revs        *capability.MemRevocationStore
	hashes      map[string]string // encoded token → capability hash
	push        *PushNotifier
	release     chan struct{}
	server      *identity.Wallet
	mu          sync.Mutex
	deliveries  []delivery
}

type delivery struct {
	status int
	err    error
}

// newFixture builds the server; opts are func(*RPCHandlerConfig) or
// func(*talos.KernelConfig).
func newFixture(t testing.TB, opts ...any) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{release: make(chan struct{})}
	var err error
	for _, w := range []**identity.Wallet{&f.root, &f.agent, &f.other} {
		if *w, err = identity.GenerateWallet("w"); err != nil {
			t.Fatal(err)
		}
	}
	f.revs = capability.NewMemRevocationStore(nil)
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{f.root.DID()}, Revocations: f.revs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	logKey, _ := identity.GenerateWallet("log")
	ns, err := audit.NewNoteSigner("talos.test/log", logKey.Signer())
	if err != nil {
		t.Fatal(err)
	}
	nv, err := audit.NewVerifier("talos.test/log", logKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if f.log, err = audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: nv}); err != nil {
		t.Fatal(err)
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{"a2a.v1.rpc": {"method", "id", "error_code"}}})
	if err != nil {
		t.Fatal(err)
	}
	kc := talos.KernelConfig{Authorizer: v, Audit: f.log, Events: events}
	for _, o := range opts {
		if o, ok := o.(func(*talos.KernelConfig)); ok {
			o(&kc)
		}
	}
	k, err := talos.NewKernel(kc)
	if err != nil {
		t.Fatal(err)
	}
	exec := &FuncExecutor{Agent: func(ctx context.Context, tk *Task, u Updater) ([]Artifact, error) {
		if tk.History[0].Parts[0].Text == "block" {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-f.release:
			}
		}
		return []Artifact{{ArtifactID: "a1", Parts: []Part{{Text: "echo: " + tk.History[0].Parts[0].Text}}}}, nil
	}}
	srvKey, _ := identity.GenerateWallet("server")
	f.server = srvKey
	ps, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: srvKey.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	f.push, err = NewPushNotifier(PushNotifierConfig{Signer: ps, AllowLoopback: true, AllowHTTP: true, Backoff: time.Millisecond,
		OnDelivery: func(_ PushConfig, _ string, status int, err error) {
			f.mu.Lock()
			f.deliveries = append(f.deliveries, delivery{status, err})
			f.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := testCard().V1()
	if err != nil {
		t.Fatal(err)
	}
	hc := RPCHandlerConfig{Kernel: k, Authorizer: v, Tasks: NewMemTaskStore(), Executor: exec, Push: f.push, ExtendedCard: ext}
	for _, o := range opts {
		if o, ok := o.(func(*RPCHandlerConfig)); ok {
			o(&hc)
		}
	}
	h, err := NewRPCHandler(hc)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	// The benchmark sends from one principal: lift its nonce quota.
	nonces, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 1 << 22, MaxPerPrincipal: 1 << 22, Rate: 1e9, Burst: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := talos.NewRouteTable(Routes())
	if err != nil {
		t.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: nonces}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /rpc", h)
	mux.Handle("POST /a2a/v1/rpc", h)
	mux.Handle("POST /a2a/v1/{$}", h.Compat())
	f.mux = att.Wrap(mux)
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	all := []string{"a2a.send", "a2a.get", "a2a.cancel", "a2a.subscribe"}
	f.hashes = map[string]string{}
	issue := func(w *identity.Wallet, extra ...string) string {
		tok, err := capability.Issue(f.root.Signer(), w.DID(), []capability.Grant{{Tool: Tool, Actions: append(extra, all...)}}, time.Now().Add(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		f.hashes[tok.Encode()] = tok.Hash()
		return tok.Encode()
	}
	f.tokA = issue(f.agent, "a2a.push_config.write", "a2a.push_config.read", "a2a.discovery.read")
	f.tokO = issue(f.other)
	f.tokL = issue(f.other, "a2a.list")
	return f
}

func (f *fixture) call(t *testing.T, w *identity.Wallet, tok, body string) map[string]any {
	t.Helper()
	return f.callAt(t, "/rpc", "a2a.v1.rpc", w, tok, body)
}

func (f *fixture) callAt(t *testing.T, path, opcode string, w *identity.Wallet, tok, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, tok)
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(req, opcode); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if opcode == "a2a.compat.rpc" {
		checkCompatResponse(t, body, raw, out)
	} else {
		checkResponse(t, body, raw, out)
	}
	return out
}

// checkResponse validates a JSON-RPC answer against the contract: results
// against the method's response schema, errors against jsonrpc_response.
func checkResponse(t *testing.T, reqBody string, raw []byte, out map[string]any) {
	t.Helper()
	if _, ok := out["error"]; ok {
		if err := validate(t, "a2a/jsonrpc_response.schema.json", raw); err != nil {
			t.Errorf("error response off contract: %v\n%s", err, raw)
		}
		return
	}
	var env struct{ Method string }
	_ = json.Unmarshal([]byte(reqBody), &env)
	m, ok := LookupMethod(env.Method)
	if !ok {
		t.Fatalf("result for unknown method %q", env.Method)
	}
	// The response schemas pin the v1 method name in no field, so the
	// result is checked under the v1 name whichever alias was called.
	if err := validate(t, "a2a/v1/methods/"+snake(m.Name)+".response.schema.json", raw); err != nil {
		t.Errorf("%s response off contract: %v\n%s", m.Name, err, raw)
	}
}

// checkCompatResponse validates legacy answers against schemas/a2a/methods.
func checkCompatResponse(t *testing.T, reqBody string, raw []byte, out map[string]any) {
	t.Helper()
	if _, ok := out["error"]; ok {
		if err := validate(t, "a2a/jsonrpc_response.schema.json", raw); err != nil {
			t.Errorf("error response off contract: %v\n%s", err, raw)
		}
		return
	}
	var env struct{ Method string }
	_ = json.Unmarshal([]byte(reqBody), &env)
	if env.Method == "tasks.list" {
		return // the contracts define no tasks.list schema
	}
	if err := validate(t, "a2a/methods/"+strings.ReplaceAll(env.Method, ".", "_")+".response.schema.json", raw); err != nil {
		t.Errorf("%s response off contract: %v\n%s", env.Method, err, raw)
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func errCode(m map[string]any) (float64, string) {
	e, _ := m["error"].(map[string]any)
	if e == nil {
		return 0, ""
	}
	d, _ := e["data"].(map[string]any)
	tc, _ := d["talos_code"].(string)
	return e["code"].(float64), tc
}

func TestRPCEndToEnd(t *testing.T) {
	f := newFixture(t)
	res := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"s1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"user","parts":[{"text":"Hello"}]}}}`)
	task := res["result"].(map[string]any)["task"].(map[string]any)
	if st := task["status"].(map[string]any)["state"]; st != string(TaskCompleted) {
		t.Fatalf("state %v, want completed: %v", st, res)
	}
	id := task["id"].(string)
	get := `{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"id":"` + id + `"}}`
	if r := f.call(t, f.agent, f.tokA, get); r["result"] == nil {
		t.Fatalf("owner GetTask: %v", r)
	}
	if _, tc := errCode(f.call(t, f.other, f.tokO, get)); tc != "NOT_FOUND" {
		t.Fatalf("other principal saw the task: %s", tc)
	}
	// Missing scope: ListTasks needs a2a.list.
	if _, tc := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":3,"method":"ListTasks","params":{}}`)); tc == "" {
		t.Fatal("ListTasks allowed without a2a.list")
	}
	// Duplicate / case-folded keys are a parse error.
	if c, _ := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":4,"method":"GetTask","Method":"CancelTask","params":{"id":"x"}}`)); c != RPCParseError {
		t.Fatalf("case-folded keys: code %v", c)
	}
	if c, _ := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":5,"method":"Nope","params":{}}`)); c != RPCMethodNotFound {
		t.Fatalf("unknown method: code %v", c)
	}
	// Cancel a running task.
	res = f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"s2","method":"SendMessage","params":{"message":{"messageId":"m2","role":"user","parts":[{"text":"block"}]},"configuration":{"returnImmediately":true}}}`)
	id2 := res["result"].(map[string]any)["task"].(map[string]any)["id"].(string)
	res = f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"c","method":"CancelTask","params":{"id":"`+id2+`"}}`)
	if st := res["result"].(map[string]any)["status"].(map[string]any)["state"]; st != string(TaskCanceled) {
		t.Fatalf("cancel: %v", res)
	}
	if _, tc := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"c2","method":"CancelTask","params":{"id":"`+id2+`"}}`)); tc != "STATE_INVALID_TRANSITION" {
		t.Fatalf("second cancel: %s", tc)
	}
	// Unattested requests never reach the handler (401, not audited), and
	// the handler itself refuses a request without a verified principal.
	resp, err := http.Post(f.srv.URL+"/rpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unattested: %d", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("POST", "/rpc", strings.NewReader(`{}`)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("handler without an Attester: %d", rec.Code)
	}
	// The extended card, for callers granted a2a.discovery.read (its
	// answer is checked against get_extended_agent_card.response).
	if r := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"card","method":"agent/getAuthenticatedExtendedCard","params":{}}`); r["result"] == nil {
		t.Fatalf("extended card: %v", r)
	}
	if _, tc := errCode(f.call(t, f.other, f.tokO, `{"jsonrpc":"2.0","id":"card","method":"GetExtendedAgentCard","params":{}}`)); tc == "" {
		t.Fatal("extended card without a2a.discovery.read")
	}
	close(f.release)
	// One audit event per attested call (11 calls above).
	if n, err := f.log.Size(context.Background()); err != nil || n != 11 {
		t.Fatalf("audit events %d, want 11", n)
	}
}

func TestAgentCardSignature(t *testing.T) {
	w, _ := identity.GenerateWallet("card")
	card := []byte(`{"name":"Talos","description":"d","version":"1"}`)
	sc, err := SignAgentCard(card, w.Signer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAgentCard(sc.JSON(), w.DID()); err != nil {
		t.Fatal(err)
	}
	other, _ := identity.GenerateWallet("x")
	if _, err := VerifyAgentCard(sc.JSON(), other.DID()); err == nil {
		t.Fatal("verified with the wrong key")
	}
	tampered := strings.Replace(string(sc.JSON()), `"Talos"`, `"Evil"`, 1)
	if _, err := VerifyAgentCard([]byte(tampered), w.DID()); err == nil {
		t.Fatal("tampered card verified")
	}
}

func TestPushDestinations(t *testing.T) {
	w, _ := identity.GenerateWallet("srv")
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	p, err := NewPushNotifier(PushNotifierConfig{Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://example.com/x", "https://127.0.0.1/x", "https://10.0.0.1/", "https://[::1]/", "https://169.254.169.254/", "https://u:p@example.com/", "https://localhost/"} {
		if err := p.ValidateDestination(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := p.ValidateDestination("https://example.com/push"); err != nil {
		t.Error(err)
	}
	// Dial-time check: a host name resolving to loopback is refused.
	if _, err := p.attempt(PushConfig{URL: "https://localhost:1/"}, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("dial to loopback: %v", err)
	}
}

// TestCompatDispatcher sends the legacy vectors (tasks.send, then get and
// cancel on the created task) to POST /a2a/v1/, which needs a2a.invoke.
func TestCompatDispatcher(t *testing.T) {
	f := newFixture(t)
	defer close(f.release)
	dir := filepath.Join(contractsDir(t), "test_vectors", "a2a")
	send, err := os.ReadFile(filepath.Join(dir, "tasks_send_sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	const path, op = "/a2a/v1/", "a2a.compat.rpc"
	if _, tc := errCode(f.callAt(t, path, op, f.agent, f.tokA, string(send))); tc == "" {
		t.Fatal("compat call allowed without a2a.invoke")
	}
	tok, err := capability.Issue(f.root.Signer(), f.agent.DID(), []capability.Grant{{Tool: Tool, Actions: []string{"a2a.invoke"}}}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	inv := tok.Encode()
	res := f.callAt(t, path, op, f.agent, inv, string(send))
	r, _ := res["result"].(map[string]any)
	if r == nil || r["status"] != "completed" {
		t.Fatalf("tasks.send: %v", res)
	}
	id := r["task_id"].(string)
	for _, name := range []string{"tasks_get.json", "tasks_cancel.json"} {
		doc, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Replace(string(doc), "01944ec7-9a00-75ad-9532-613200af732b", id, 1)
		res := f.callAt(t, path, op, f.agent, inv, body)
		if name == "tasks_get.json" && res["result"] == nil {
			t.Fatalf("tasks.get: %v", res)
		}
		if name == "tasks_cancel.json" {
			// A completed task cannot be canceled.
			if _, tc := errCode(res); tc != "STATE_INVALID_TRANSITION" {
				t.Fatalf("tasks.cancel of a completed task: %v", res)
			}
		}
	}
	if res := f.callAt(t, path, op, f.agent, inv, `{"jsonrpc":"2.0","id":1,"method":"tasks.list","params":{}}`); len(res["result"].(map[string]any)["tasks"].([]any)) != 1 {
		t.Fatalf("tasks.list: %v", res)
	}
	// v1 method names are not served on the compat endpoint.
	if c, _ := errCode(f.callAt(t, path, op, f.agent, inv, `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}`)); c != RPCMethodNotFound {
		t.Fatalf("v1 method on compat: %v", c)
	}
}

// TestKernelLimitsAndBudget: the Kernel's rate limit and budget apply per
// call on the RPC surface, and denied calls are audited too.
func TestKernelLimitsAndBudget(t *testing.T) {
	limits, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil)},
		map[string]budget.Limit{"a2a.v1.rpc": {Rate: 3, Period: time.Hour, Burst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *talos.KernelConfig) { c.Limits, c.Budget = limits, mem },
		func(c *RPCHandlerConfig) {
			c.Budget = func(r *http.Request, method string) *budget.ReserveRequest {
				if method != "SendMessage" {
					return nil
				}
				p, _ := talos.PrincipalFrom(r.Context())
				return &budget.ReserveRequest{Scopes: []budget.Scope{{ID: "agent:" + p.String(), Limit: 150}}, Amount: 100}
			}
		})
	defer close(f.release)
	send := `{"jsonrpc":"2.0","id":"s","method":"SendMessage","params":{"message":{"messageId":"m","role":"user","parts":[{"text":"hi"}]}}}`
	if r := f.call(t, f.agent, f.tokA, send); r["result"] == nil {
		t.Fatalf("first send: %v", r)
	}
	if _, tc := errCode(f.call(t, f.agent, f.tokA, send)); tc != "BUDGET_EXCEEDED" {
		t.Fatalf("second send over budget: %q", tc)
	}
	// The third call is admitted by the limiter (a GetTask of nothing),
	// the fourth is over the rate.
	if _, tc := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"none"}}`)); tc != "NOT_FOUND" {
		t.Fatalf("third call: %q", tc)
	}
	if _, tc := errCode(f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"none"}}`)); tc != "RATE_LIMITED" {
		t.Fatalf("fourth call: %q", tc)
	}
	if n, err := f.log.Size(context.Background()); err != nil || n != 4 {
		t.Fatalf("audit events %d, want 4", n)
	}
}

// TestRecoverAfterRestart: a second handler on the same store (a restarted
// server) ends the task the first left working, and serves it to its owner.
func TestRecoverAfterRestart(t *testing.T) {
	store := NewMemTaskStore()
	first := newFixture(t, func(c *RPCHandlerConfig) { c.Tasks = store })
	res := first.call(t, first.agent, first.tokA, `{"jsonrpc":"2.0","id":"s","method":"SendMessage","params":{"message":{"messageId":"m","role":"user","parts":[{"text":"block"}]},"configuration":{"returnImmediately":true}}}`)
	id := res["result"].(map[string]any)["task"].(map[string]any)["id"].(string)
	// Wait until the first server's executor has the task working.
	for {
		tk, err := store.GetTask(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status.State == TaskWorking {
			break
		}
		time.Sleep(time.Millisecond)
	}
	second := newFixture(t, func(c *RPCHandlerConfig) { c.Tasks = store })
	defer close(second.release)
	n, err := second.handler.Recover(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	tk, _ := store.GetTask(context.Background(), id)
	if tk.Status.State != TaskFailed || tk.Status.Message.Parts[0].Text != "interrupted by restart" {
		t.Fatalf("after recovery: %+v", tk.Status)
	}
	// The first server's executor finishing later cannot revive it.
	close(first.release)
	if r := first.call(t, first.agent, first.tokA, `{"jsonrpc":"2.0","id":"g","method":"GetTask","params":{"id":"`+id+`"}}`); r["result"].(map[string]any)["status"].(map[string]any)["state"] != string(TaskFailed) {
		t.Fatalf("owner sees %v", r)
	}
}
