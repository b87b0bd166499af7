package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	a2apg "github.com/talosgo/talos/gateway/a2a/postgres"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// rpcReply is a JSON-RPC response of the A2A v1 surface.
type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      any             `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			TalosCode string `json:"talos_code"`
		} `json:"data"`
	} `json:"error"`
}

type wireTask struct {
	ID     string `json:"id"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Artifacts []a2a.Artifact `json:"artifacts"`
}

// rpc sends one attested JSON-RPC call to path with token.
func (a *agent) rpc(path, token, method string, params any) rpcReply {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "1", "method": method, "params": params})
	req, err := http.NewRequest("POST", a.base+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, token)
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r rpcReply
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r); err != nil {
		a.t.Fatalf("%s: %d %s", method, resp.StatusCode, raw)
	}
	return r
}

func (r rpcReply) task(t *testing.T, what string) wireTask {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("%s: error %d %s %s", what, r.Error.Code, r.Error.Data.TalosCode, r.Error.Message)
	}
	var out struct {
		Task *wireTask `json:"task"`
		wireTask
	}
	if err := json.Unmarshal(r.Result, &out); err != nil {
		t.Fatalf("%s: %s", what, r.Result)
	}
	if out.Task != nil {
		return *out.Task
	}
	return out.wireTask
}

// blockingLLM is an OpenAI-compatible upstream that answers only when
// released, or never once the request is canceled.
type blockingLLM struct {
	*httptest.Server
	release  chan struct{}
	canceled chan struct{}
	once     sync.Once
}

func newBlockingLLM(t *testing.T) *blockingLLM {
	b := &blockingLLM{release: make(chan struct{}), canceled: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a client gone only after the body is read
		select {
		case <-b.release:
			fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"done"}}]}`)
		case <-r.Context().Done():
			b.once.Do(func() { close(b.canceled) })
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func a2aScopes() []string {
	return []string{"a2a.send", "a2a.get", "a2a.cancel", "a2a.subscribe", "a2a.discovery.read", "a2a.push_config.write", "a2a.push_config.read"}
}

// TestA2AV1Server: attested SendMessage → GetTask → CancelTask through the
// real server (llm executor on an upstream that blocks until the task is
// canceled), one audit event per call, tasks invisible to others, and the
// signed agent card served at both well-known paths and verifiable with
// the server's did:key.
func TestA2AV1Server(t *testing.T) {
	llm := newBlockingLLM(t)
	cfg := testConfig(t)
	cfg.LLMUpstream, cfg.A2AExecutor, cfg.A2ALLMModel = llm.URL, "llm", "m"
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	atok := issue(t, ts, alice.did, false, grant(a2a.Tool, a2aScopes()...)).Token
	btok := issue(t, ts, bob.did, false, grant(a2a.Tool, a2aScopes()...)).Token
	from := auditSize(t, ts)

	msg := map[string]any{"message": map[string]any{"messageId": "m1", "role": "user", "parts": []any{map[string]any{"text": "Hello"}}},
		"configuration": map[string]any{"returnImmediately": true}}
	tk := alice.rpc("/rpc", atok, "SendMessage", msg).task(t, "SendMessage")
	if tk.ID == "" || (tk.Status.State != "TASK_STATE_SUBMITTED" && tk.Status.State != "TASK_STATE_WORKING") {
		t.Fatalf("sent task: %+v", tk)
	}
	got := alice.rpc("/a2a/v1/rpc", atok, "GetTask", map[string]any{"id": tk.ID}).task(t, "GetTask")
	if got.ID != tk.ID || got.Status.State == "TASK_STATE_COMPLETED" {
		t.Fatalf("task finished before its upstream answered: %+v", got)
	}
	if r := bob.rpc("/rpc", btok, "GetTask", map[string]any{"id": tk.ID}); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeNotFound) {
		t.Fatalf("another principal read the task: %+v", r)
	}
	if r := bob.rpc("/rpc", btok, "CancelTask", map[string]any{"id": tk.ID}); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeNotFound) {
		t.Fatalf("another principal canceled the task: %+v", r)
	}
	c := alice.rpc("/rpc", atok, "tasks/cancel", map[string]any{"id": tk.ID}).task(t, "CancelTask")
	if c.Status.State != "TASK_STATE_CANCELED" {
		t.Fatalf("canceled task: %+v", c)
	}
	<-llm.canceled // the executor's upstream call was canceled
	if got := alice.rpc("/rpc", atok, "GetTask", map[string]any{"id": tk.ID}).task(t, "GetTask"); got.Status.State != "TASK_STATE_CANCELED" {
		t.Fatalf("after cancel: %+v", got)
	}
	// Without the scope: denied, and still audited.
	narrow := issue(t, ts, alice.did, false, grant(a2a.Tool, "a2a.get")).Token
	if r := alice.rpc("/rpc", narrow, "SendMessage", msg); r.Error == nil || r.Error.Data.TalosCode == "" {
		t.Fatalf("SendMessage without a2a.send: %+v", r)
	}
	counts := auditedSince(t, ts, from)
	if counts["a2a.v1.rpc POST success"] != 4 || counts["a2a.v1.rpc POST failure"] != 2 || counts["a2a.v1.rpc POST denied"] != 1 {
		t.Fatalf("audit events: %v", counts)
	}

	// The agent card, at both paths, signed by the server's did:key.
	for _, path := range []string{"/.well-known/agent-card.json", "/.well-known/agent.json"} {
		resp := ts.do(t, "GET", path, "", nil)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		card, err := a2a.VerifyAgentCard(raw, ts.core.wallet.DID())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if string(card["name"]) == "" || card["x_talos"] == nil {
			t.Fatalf("%s: %s", path, raw)
		}
	}
	ext := alice.rpc("/rpc", atok, "GetExtendedAgentCard", map[string]any{})
	if ext.Error != nil || !bytes.Contains(ext.Result, []byte(`"supportedInterfaces"`)) {
		t.Fatalf("extended card: %+v", ext)
	}
}

// TestA2AV1Echo: the default executor answers the message's text; the
// compat dispatcher serves the same tasks.
func TestA2AV1Echo(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant(a2a.Tool, "a2a.send", "a2a.get", "a2a.invoke")).Token
	tk := alice.rpc("/rpc", tok, "message/send", map[string]any{"message": map[string]any{"messageId": "m1", "role": "user",
		"parts": []any{map[string]any{"text": "Hello"}}}}).task(t, "SendMessage")
	if tk.Status.State != "TASK_STATE_COMPLETED" || len(tk.Artifacts) != 1 || tk.Artifacts[0].Parts[0].Text != "Hello" {
		t.Fatalf("echo task: %+v", tk)
	}
	r := alice.rpc("/a2a/v1/", tok, "tasks.get", map[string]any{"task_id": tk.ID})
	if r.Error != nil || !bytes.Contains(r.Result, []byte(tk.ID)) {
		t.Fatalf("compat tasks.get: %+v %s", r.Error, r.Result)
	}
	// A hard team budget of 1.5 tasks: the second task is refused before
	// it is created; reads cost nothing.
	if st := decode(t, ts.do(t, "PUT", "/v1/budgets/team:team-a", ts.cred,
		[]byte(`{"limit_usd":"0.0015","mode":"hard","period":"daily"}`)), nil); st != http.StatusOK {
		t.Fatalf("budget: %d", st)
	}
	send := map[string]any{"message": map[string]any{"messageId": "m2", "role": "user", "parts": []any{map[string]any{"text": "again"}}}}
	alice.rpc("/rpc", tok, "SendMessage", send).task(t, "first task in budget")
	if r := alice.rpc("/rpc", tok, "SendMessage", send); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("task over the budget: %+v", r.Error)
	}
	for range 3 {
		alice.rpc("/rpc", tok, "GetTask", map[string]any{"id": tk.ID}).task(t, "GetTask over the budget")
	}
}

// TestA2AV1Postgres: tasks and push configurations on PostgreSQL; a task
// left working by a previous process is failed at start-up (Recover) and
// stays readable.
func TestA2AV1Postgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	ts := newTestServer(t, cfg)
	store, ok := ts.core.a2a.tasks.(*a2apg.TaskStore)
	if !ok {
		t.Fatalf("task store is %T, want PostgreSQL", ts.core.a2a.tasks)
	}
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant(a2a.Tool, a2aScopes()...)).Token
	tk := alice.rpc("/rpc", tok, "SendMessage", map[string]any{"message": map[string]any{"messageId": "m1", "role": "user",
		"parts": []any{map[string]any{"text": "Hello"}}}}).task(t, "SendMessage")
	if tk.Status.State != "TASK_STATE_COMPLETED" {
		t.Fatalf("task: %+v", tk)
	}
	// A task another process left working.
	now := time.Now()
	orphan := &a2a.Task{ID: contracts.NewUUIDv7(), ContextID: "c", Owner: alice.did, Version: 1, Created: now, Updated: now,
		Status: a2a.TaskStatus{State: a2a.TaskWorking, Timestamp: now.UTC().Format(time.RFC3339)}}
	if err := store.CreateTask(t.Context(), orphan); err != nil {
		t.Fatal(err)
	}
	ts.Close(context.Background())
	ts2 := newTestServer(t, cfg)
	alice2 := alice.on(ts2)
	if got := alice2.rpc("/rpc", tok, "GetTask", map[string]any{"id": orphan.ID}).task(t, "GetTask"); got.Status.State != "TASK_STATE_FAILED" {
		t.Fatalf("orphan after restart: %+v", got)
	}
	if got := alice2.rpc("/rpc", tok, "GetTask", map[string]any{"id": tk.ID}).task(t, "GetTask"); got.Status.State != "TASK_STATE_COMPLETED" {
		t.Fatalf("completed task after restart: %+v", got)
	}
}

// sse opens an attested SSE call and returns its events' results.
func (a *agent) sse(token, method string, params any) (<-chan map[string]any, func()) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "s", "method": method, "params": params})
	req, _ := http.NewRequest("POST", a.base+"/rpc", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, token)
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		raw, _ := io.ReadAll(resp.Body)
		a.t.Fatalf("%s: %d %s %s", method, resp.StatusCode, ct, raw)
	}
	ch := make(chan map[string]any, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var env struct {
				Result map[string]any `json:"result"`
			}
			if json.Unmarshal([]byte(data), &env) == nil {
				ch <- env.Result
			}
		}
	}()
	return ch, func() { resp.Body.Close() }
}

func lastState(t *testing.T, ch <-chan map[string]any) string {
	t.Helper()
	state := ""
	for ev := range ch {
		if tk, ok := ev["task"].(map[string]any); ok {
			state = tk["status"].(map[string]any)["state"].(string)
		}
		if su, ok := ev["statusUpdate"].(map[string]any); ok {
			state = su["status"].(map[string]any)["state"].(string)
		}
	}
	return state
}

// TestA2AV1EndToEnd (issue 16 item 6) through the served server: alice
// sends a streaming message, bob (granted a2a.list) subscribes to her
// task, alice configures a push destination and cancels the task; both
// streams end canceled, the push arrives attested by the server's key and
// the receiver verifies it against the did:key of the server's card; the
// delivery is audited.
func TestA2AV1EndToEnd(t *testing.T) {
	llm := newBlockingLLM(t)
	cfg := testConfig(t)
	cfg.LLMUpstream, cfg.A2AExecutor, cfg.A2ALLMModel, cfg.A2APushAllowPrivate = llm.URL, "llm", "m", true
	ts := newTestServer(t, cfg)
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	atok := issue(t, ts, alice.did, false, grant(a2a.Tool, a2aScopes()...)).Token
	btok := issue(t, ts, bob.did, false, grant(a2a.Tool, "a2a.subscribe", "a2a.list")).Token

	// The receiver trusts the key of the server's signed card only.
	resp, err := http.Get(ts.url + "/.well-known/agent-card.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var card struct {
		XTalos struct {
			PublicKey string `json:"public_key"`
		} `json:"x_talos"`
	}
	_ = json.Unmarshal(raw, &card)
	serverDID, err := identity.ParseDID(card.XTalos.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2a.VerifyAgentCard(raw, serverDID); err != nil || serverDID != ts.core.wallet.DID() {
		t.Fatalf("card key %v: %v", serverDID, err)
	}
	pv, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1024),
		Opcode: func(*http.Request) (string, error) { return a2a.PushDestinationOp, nil }})
	if err != nil {
		t.Fatal(err)
	}
	pushed := make(chan string, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		att, err := pv.Verify(r)
		if err != nil || att.DID != serverDID || r.Header.Get("X-A2A-Notification-Token") != "tok-1" {
			t.Errorf("push not attested by the server: %v %v", err, att)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body struct {
			StatusUpdate struct {
				Status struct {
					State string `json:"state"`
				} `json:"status"`
			} `json:"statusUpdate"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		pushed <- body.StatusUpdate.Status.State
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	from := auditSize(t, ts)
	a, closeA := alice.sse(atok, "SendStreamingMessage", map[string]any{"message": map[string]any{"messageId": "m1", "role": "user",
		"parts": []any{map[string]any{"text": "Hello"}}}})
	defer closeA()
	first := <-a
	id := first["task"].(map[string]any)["id"].(string)
	b, closeB := bob.sse(btok, "SubscribeToTask", map[string]any{"id": id})
	defer closeB()
	if ev := <-b; ev["task"].(map[string]any)["id"] != id {
		t.Fatalf("bob's first event: %v", ev)
	}
	if r := alice.rpc("/rpc", atok, "CreateTaskPushNotificationConfig", map[string]any{"taskId": id, "url": recv.URL + "/push", "token": "tok-1"}); r.Error != nil {
		t.Fatalf("push config: %+v", r.Error)
	}
	alice.rpc("/rpc", atok, "CancelTask", map[string]any{"id": id}).task(t, "CancelTask")
	if s := lastState(t, a); s != "TASK_STATE_CANCELED" {
		t.Fatalf("alice's stream ended %q", s)
	}
	if s := lastState(t, b); s != "TASK_STATE_CANCELED" {
		t.Fatalf("bob's stream ended %q", s)
	}
	if s := <-pushed; s != "TASK_STATE_CANCELED" {
		t.Fatalf("pushed %q", s)
	}
	ts.core.a2a.push.Wait()
	counts := auditedSince(t, ts, from)
	if counts["a2a.push POST success"] != 1 || counts["a2a.v1.rpc POST success"] != 4 {
		t.Fatalf("audit events: %v", counts)
	}
}

// sendA2A is the README's A2A client call (the test below checks the
// README holds this function verbatim, and runs it against a served
// server).
//
// README A2A client begin
func sendA2A(talosURL, token string, w *identity.Wallet) (*http.Response, error) {
	// The server's attested routes and their opcodes, from GET /v1/identity.
	resp, err := http.Get(talosURL + "/v1/identity")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var id struct {
		Routes map[string]string `json:"attested_routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&id); err != nil {
		return nil, err
	}
	routes, err := talos.NewClientRouteTable(id.Routes)
	if err != nil {
		return nil, err
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		return nil, err
	}
	// Every request on a route of the table is attested with its opcode.
	client := &http.Client{Transport: &identity.AttestingTransport{Signer: signer, Routes: routes}}
	req, err := http.NewRequest("POST", talosURL+"/rpc", strings.NewReader(
		`{"jsonrpc":"2.0","id":"1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"user","parts":[{"text":"Hello"}]}}}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, token) // the "token" of POST /v1/capabilities
	return client.Do(req)
}

// README A2A client end

func TestREADMEA2AClient(t *testing.T) {
	src, err := os.ReadFile("a2av1_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(src), "// README A2A client begin\n")
	fn, _, _ := strings.Cut(rest, "\n// README A2A client end")
	if fn == "" || !strings.Contains(readme(t), fn) {
		t.Fatalf("README.md's A2A section does not hold sendA2A as written in a2av1_test.go:\n%s", fn)
	}
	ts := newTestServer(t, testConfig(t))
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "research")
	tok := issue(t, ts, alice.did, false, grant(a2a.Tool, "a2a.send")).Token
	resp, err := sendA2A(ts.url, tok, alice.w)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Result struct {
			Task wireTask `json:"task"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Result.Task.Status.State != "TASK_STATE_COMPLETED" ||
		len(r.Result.Task.Artifacts) != 1 || r.Result.Task.Artifacts[0].Parts[0].Text != "Hello" {
		t.Fatalf("README client: %v %+v", err, r)
	}
}
