package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"

	mcpgw "github.com/talosgo/talos/gateway/mcp"
	mcppg "github.com/talosgo/talos/gateway/mcp/postgres"
)

// serveMCP serves srv over loopback streamable HTTP.
func serveMCP(t *testing.T, srv *mcp.Server) string {
	t.Helper()
	h := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(h.Close)
	return h.URL
}

func adminJSON(t *testing.T, ts *testServer, method, path, cred, body string) (int, map[string]any) {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	resp := ts.do(t, method, path, cred, b)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, v
}

// TestAdminMCPServers: an MCP server put through the admin API is served
// at once (listed, callable) without a restart; removed, its tools are
// refused; the set survives a restart; bodies are strict, URLs checked,
// and only admins with admin.mcp.servers write may change it.
func TestAdminMCPServers(t *testing.T) {
	cfg := testConfig(t)
	cfg.UpstreamAllowLoopback = true
	ts := newTestServer(t, cfg)
	files := newFileServer()
	url := serveMCP(t, files.server)

	if st, _ := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", "", `{"url":"`+url+`"}`); st != 401 {
		t.Fatalf("unauthenticated put: %d", st)
	}
	viewer := ts.owner.session(t, ts, "viewer")
	if st, _ := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", viewer, `{"url":"`+url+`"}`); st != 403 {
		t.Fatalf("viewer put: %d", st)
	}
	for _, bad := range []string{`{"url":"` + url + `","x":1}`, `{"URL":"` + url + `"}`, `{"url":"ftp://h/x"}`,
		`{"url":"http://u:p@127.0.0.1:1/"}`, `{"url":"http://169.254.169.254/"}`, `{}`} {
		if st, v := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", ts.cred, bad); st != 400 || v["code"] != string(contracts.CodeInvalidInput) {
			t.Fatalf("bad body %s: %d %v", bad, st, v)
		}
	}
	if st, _ := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/gone", ts.cred, `{"url":"http://127.0.0.1:1/mcp"}`); st != 502 {
		t.Fatalf("unreachable server: %d", st)
	}
	before := auditSize(t, ts)
	if st, v := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", ts.cred, `{"url":"`+url+`"}`); st != 201 || v["id"] != "files" {
		t.Fatalf("put: %d %v", st, v)
	}
	// Audited twice: the config store's write (surface config) and the
	// admin action (surface admin).
	if got := auditedSince(t, ts, before); got["config PUT success"] != 1 || got["admin PUT success"] != 1 {
		t.Fatalf("audited %v", got)
	}
	alice := newAgent(t, ts, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "read_file")).Token)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/x"}})
	if err != nil || textOf(res) != "contents of /x" {
		t.Fatalf("call the added server: %v %v", res, err)
	}
	if st, v := adminJSON(t, ts, "GET", "/v1/admin/mcp/servers", viewer, ""); st != 200 || len(v["items"].([]any)) != 1 {
		t.Fatalf("list: %d %v", st, v)
	}
	if st, v := adminJSON(t, ts, "GET", "/v1/admin/mcp/servers/files", viewer, ""); st != 200 || v["url"] != url {
		t.Fatalf("get: %d %v", st, v)
	}
	if st, _ := adminJSON(t, ts, "GET", "/v1/admin/mcp/servers?limit=0", viewer, ""); st != 400 {
		t.Fatalf("bad limit: %d", st)
	}
	if st, _ := adminJSON(t, ts, "DELETE", "/v1/admin/mcp/servers/files", ts.cred, ""); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/x"}}); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("call a removed server: %v", err)
	}
	if files.reads.Load() != 1 {
		t.Fatal("a removed server was called")
	}
	if st, _ := adminJSON(t, ts, "DELETE", "/v1/admin/mcp/servers/files", ts.cred, ""); st != 404 {
		t.Fatalf("delete twice: %d", st)
	}
	if st, _ := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", ts.cred, `{"url":"`+url+`"}`); st != 201 {
		t.Fatal(st)
	}
	// A restart on the same data directory serves the stored set.
	if err := ts.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts2 := newTestServer(t, cfg)
	if ts2.core.gateway == nil || strings.Join(ts2.core.gateway.Upstreams(), ",") != "files" {
		t.Fatal("the stored MCP servers were not served after a restart")
	}
}

// TestAdminLLMRouting: LLM upstreams (API key by secret id, never
// returned) and model groups put through the admin API route the next
// chat completion; a group's upstream cannot be deleted; removing the
// group stops serving the model.
func TestAdminLLMRouting(t *testing.T) {
	cfg := testConfig(t)
	cfg.UpstreamAllowLoopback = true
	ts := newTestServer(t, cfg)
	up := newFakeLLM(t)
	if err := ts.secrets.Put(t.Context(), "llm/u1", []byte("sk-admin-added")); err != nil {
		t.Fatal(err)
	}
	put := func(path, body string) (int, map[string]any) { return adminJSON(t, ts, "PUT", path, ts.cred, body) }
	if st, v := put("/v1/admin/llm/upstreams/u1", `{"url":"`+up.srv.URL+`/v1","api_key_secret_id":"nope"}`); st != 400 {
		t.Fatalf("missing secret: %d %v", st, v)
	}
	if st, v := put("/v1/admin/llm/upstreams/u1", `{"url":"`+up.srv.URL+`/v1","api_key_secret_id":"llm/u1","api_key":"sk-x"}`); st != 400 {
		t.Fatalf("a key in the body: %d %v", st, v)
	}
	if st, v := put("/v1/admin/llm/upstreams/u1", `{"url":"`+up.srv.URL+`/v1","api_key_secret_id":"llm/u1"}`); st != 201 || v["api_key_secret_id"] != "llm/u1" {
		t.Fatalf("put upstream: %d %v", st, v)
	}
	if st, v := put("/v1/admin/llm/model-groups/m1", `{"upstreams":["zz"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1}`); st != 400 {
		t.Fatalf("group of an unknown upstream: %d %v", st, v)
	}
	if st, v := put("/v1/admin/llm/model-groups/m1", `{"upstreams":["u1"],"prompt_per_1k_micro_usd":1000,"completion_per_1k_micro_usd":2000}`); st != 201 {
		t.Fatalf("put group: %d %v", st, v)
	}
	resp := ts.do(t, "GET", "/v1/admin/llm/upstreams", ts.cred, nil)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(raw), "sk-admin-added") || !strings.Contains(string(raw), `"llm/u1"`) {
		t.Fatalf("list upstreams: %d %s", resp.StatusCode, raw)
	}
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("llm", "m1")).Token
	body := `{"model":"m1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	if st := alice.chat(tok, body, nil); st != 200 {
		t.Fatalf("chat: %d", st)
	}
	if k, _ := up.gotKey.Load().(string); k != "Bearer sk-admin-added" {
		t.Fatalf("upstream got key %q", k)
	}
	if st, _ := adminJSON(t, ts, "DELETE", "/v1/admin/llm/upstreams/u1", ts.cred, ""); st != 400 {
		t.Fatalf("delete an upstream in use: %d", st)
	}
	if st, _ := adminJSON(t, ts, "DELETE", "/v1/admin/llm/model-groups/m1", ts.cred, ""); st != 204 {
		t.Fatalf("delete group: %d", st)
	}
	var eb struct{ Code string }
	if st := alice.chat(tok, body, &eb); st != 403 || eb.Code != string(contracts.CodeModelNotAllowed) {
		t.Fatalf("chat after the group was removed: %d %+v", st, eb)
	}
	if st, _ := adminJSON(t, ts, "DELETE", "/v1/admin/llm/upstreams/u1", ts.cred, ""); st != 204 {
		t.Fatalf("delete upstream: %d", st)
	}
}

// TestGovernedWritesThroughServer: with TALOS_MCP_SUPERVISOR=human a write
// waits in GET /v1/admin/approvals until an admin approves it at POST
// /v1/admin/approvals/{id}; the trace (on DataDir/tga) verifies with the
// audit package's TGA verifier; reads are not governed.
func TestGovernedWritesThroughServer(t *testing.T) {
	cfg := testConfig(t)
	cfg.MCPSupervisor = supervisorHuman
	cfg.MCPApprovalTimeout = time.Minute
	ts := newTestServer(t, cfg)
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "read_file", "write_file")).Token)
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/r"}}); err != nil {
		t.Fatalf("read: %v", err)
	}
	done := make(chan error, 1)
	var res *mcp.CallToolResult
	go func() {
		var err error
		res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "gw-1"},
			Name: "files.write_file", Arguments: map[string]any{"path": "/w", "data": "x"}})
		done <- err
	}()
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); {
		st, v := adminJSON(t, ts, "GET", "/v1/admin/approvals", ts.cred, "")
		if st != 200 {
			t.Fatalf("approvals: %d %v", st, v)
		}
		if items := v["items"].([]any); len(items) == 1 {
			it := items[0].(map[string]any)
			if it["principal"] != alice.did || it["tool"] != "files.write_file" {
				t.Fatalf("approval item %v", it)
			}
			id = it["id"].(string)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if id == "" || files.writes.Load() != 0 {
		t.Fatalf("no pending approval (%d writes)", files.writes.Load())
	}
	viewer := ts.owner.session(t, ts, "viewer")
	if st, _ := adminJSON(t, ts, "POST", "/v1/admin/approvals/"+id, viewer, `{"decision":"approve"}`); st != 403 {
		t.Fatalf("a viewer approves: %d", st)
	}
	if st, v := adminJSON(t, ts, "POST", "/v1/admin/approvals/"+id, ts.cred, `{"decision":"approve","reason":"ok"}`); st != 200 || v["state"] != audit.StateAuthorized {
		t.Fatalf("approve: %d %v", st, v)
	}
	if err := <-done; err != nil || textOf(res) != "wrote /w" || files.writes.Load() != 1 {
		t.Fatalf("approved write: %v %v", res, err)
	}
	entries, err := ts.core.gateway.TraceEntries(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, entries)
	if err != nil || m.State() != audit.StateCompleted {
		t.Fatalf("trace: %v %v", m, err)
	}
	var sd struct {
		Data struct {
			Rationale string         `json:"rationale"`
			Meta      map[string]any `json:"meta"`
		} `json:"artifact_data"`
	}
	json.Unmarshal(entries[1], &sd)
	if sd.Data.Rationale != "ok" || sd.Data.Meta["decided_by"] != ts.owner.Wallet.DID().String() {
		t.Fatalf("decision recorded as %+v", sd.Data)
	}
}

// TestUpstreamURLPolicy: the SSRF rule on URLs and on dialed addresses.
func TestUpstreamURLPolicy(t *testing.T) {
	strict := urlPolicy{}
	for _, u := range []string{"http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/",
		"http://169.254.169.254/latest", "http://0.0.0.0/", "https://user:pw@example.com/", "file:///etc/passwd",
		"https://example.com/?q=1", "//example.com", "http://[fe80::1]/", "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/"} {
		if err := strict.check(u); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s accepted: %v", u, err)
		}
	}
	for _, u := range []string{"https://api.openai.com/v1", "http://example.com:8080/mcp"} {
		if err := strict.check(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	open := urlPolicy{allowLoopback: true, allowPrivate: true}
	if err := open.check("http://127.0.0.1:1/"); err != nil {
		t.Error(err)
	}
	if err := open.check("http://169.254.169.254/"); err == nil {
		t.Error("link-local accepted with every switch on")
	}
	if strict.checkIP(netip.MustParseAddr("127.0.0.1")) == nil || open.checkIP(netip.MustParseAddr("127.0.0.1")) != nil {
		t.Error("dial check")
	}
	// The dialer refuses a loopback address even when the URL named a host.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if _, err := strict.client().Get(srv.URL); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("strict dial of %s: %v", srv.URL, err)
	}
	resp, err := open.client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestAdminUpstreamsSharedByReplicas: on a shared PostgreSQL, an MCP
// server and an LLM model group put on replica a are served by replica b
// through change propagation (LISTEN/NOTIFY; the periodic sync is off),
// and by a replica started afterwards; a removal on a reaches b too.
func TestAdminUpstreamsSharedByReplicas(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32) // replicas share the master key
	cfg.UpstreamAllowLoopback = true
	cfg.UpstreamSync = 0 // only change propagation
	a := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	cfg2 := cfg
	cfg2.DataDir = t.TempDir() + "/replica"
	b := newTestServer(t, cfg2)
	a.life.Start() // the workers (change propagation) without serving
	b.life.Start()

	files := newFileServer()
	url := serveMCP(t, files.server)
	llmUp := newFakeLLM(t)
	if st, v := adminJSON(t, a, "PUT", "/v1/admin/mcp/servers/files", a.cred, `{"url":"`+url+`"}`); st != 201 {
		t.Fatalf("put server: %d %v", st, v)
	}
	if st, v := adminJSON(t, a, "PUT", "/v1/admin/llm/upstreams/u1", a.cred, `{"url":"`+llmUp.srv.URL+`/v1"}`); st != 201 {
		t.Fatalf("put upstream: %d %v", st, v)
	}
	if st, v := adminJSON(t, a, "PUT", "/v1/admin/llm/model-groups/m1", a.cred, `{"upstreams":["u1"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1}`); st != 201 {
		t.Fatalf("put group: %d %v", st, v)
	}
	waitPropagated(t, "replica b serves what replica a put", func() bool {
		return b.core.gateway != nil && strings.Join(b.core.gateway.Upstreams(), ",") == "files" && b.core.llm != nil && strings.Join(b.core.llm.Routed(), ",") == "m1"
	})
	cfg3 := cfg
	cfg3.DataDir = t.TempDir() + "/replica3"
	c := newTestServer(t, cfg3)
	if c.core.gateway == nil || strings.Join(c.core.gateway.Upstreams(), ",") != "files" {
		t.Fatal("a replica started afterwards does not serve the stored server")
	}
	if st, _ := adminJSON(t, a, "DELETE", "/v1/admin/mcp/servers/files", a.cred, ""); st != 204 {
		t.Fatal(st)
	}
	waitPropagated(t, "replica b stops serving the removed server", func() bool { return len(b.core.gateway.Upstreams()) == 0 })
}

// waitPropagated polls cond for up to 5 s: change propagation's bound is about
// 1 s (the version read); messages are faster.
func waitPropagated(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGovernedWritesPostgres: with PostgreSQL the traces are in
// <prefix>mcp_tga_traces/_entries and verify.
func TestGovernedWritesPostgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MCPSupervisor = supervisorApprove
	ts := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	if _, ok := ts.core.governance.Store.(*mcppg.TraceStore); !ok {
		t.Fatalf("trace store is %T", ts.core.governance.Store)
	}
	alice := newAgent(t, ts, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "write_file")).Token)
	for range 2 {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "pg-1"},
			Name: "files.write_file", Arguments: map[string]any{"path": "/p", "data": "x"}})
		if err != nil || textOf(res) != "wrote /p" {
			t.Fatalf("governed write: %v %v", res, err)
		}
	}
	if files.writes.Load() != 1 {
		t.Fatalf("%d executions", files.writes.Load())
	}
	if open, err := ts.core.governance.Store.Open(t.Context(), "", "", 10); err != nil || len(open) != 0 {
		t.Fatalf("open traces %v %v", open, err)
	}
}

// TestGovernedApprovalAcrossReplicas: on a shared PostgreSQL a write
// waiting on replica a is approved by an admin on replica b; b executes
// it (once), a's caller gets the result.
func TestGovernedApprovalAcrossReplicas(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	cfg.MCPSupervisor = supervisorHuman
	cfg.MCPApprovalTimeout = time.Minute
	a := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	cfg2 := cfg
	cfg2.DataDir = t.TempDir() + "/replica"
	b := newTestServer(t, cfg2)
	b.cred = a.cred
	files := newFileServer()
	url := serveMCP(t, files.server)
	for _, ts := range []*testServer{a, b} {
		if err := ts.core.enableGateway(t.Context(), ts.Server, map[string]upstreamDialer{"files": mcpgw.HTTPUpstream(url, nil)}, nil); err != nil {
			t.Fatal(err)
		}
		ts.core.mountGateway(ts.mux, ts.core.gateway)
	}
	alice := newAgent(t, a, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, a, alice.did, false, grant("files", "write_file")).Token)
	done := make(chan error, 1)
	var res *mcp.CallToolResult
	go func() {
		var err error
		res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "x-1"},
			Name: "files.write_file", Arguments: map[string]any{"path": "/x", "data": "x"}})
		done <- err
	}()
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, v := adminJSON(t, b, "GET", "/v1/admin/approvals", b.cred, ""); st == 200 && len(v["items"].([]any)) == 1 {
			id = v["items"].([]any)[0].(map[string]any)["id"].(string)
		}
	}
	if id == "" {
		t.Fatal("replica b does not list the request waiting on replica a")
	}
	if st, v := adminJSON(t, b, "POST", "/v1/admin/approvals/"+id, b.cred, `{"decision":"approve"}`); st != 200 {
		t.Fatalf("approve on b: %d %v", st, v)
	}
	select {
	case err := <-done:
		if err != nil || textOf(res) != "wrote /x" {
			t.Fatalf("the call on a: %v %v", res, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call on replica a did not return")
	}
	if n := files.writes.Load(); n != 1 {
		t.Fatalf("%d executions", n)
	}
}

// TestAdminMCPServerDownAtStart: a stored MCP server that is down when the
// server starts does not keep it from starting; the sync serves it once it
// answers.
func TestAdminMCPServerDownAtStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.UpstreamAllowLoopback = true
	cfg.UpstreamSync = 0
	ts := newTestServer(t, cfg)
	files := newFileServer()
	h := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return files.server }, nil))
	defer h.Close()
	if st, v := adminJSON(t, ts, "PUT", "/v1/admin/mcp/servers/files", ts.cred, `{"url":"`+h.URL+`"}`); st != 201 {
		t.Fatalf("put: %d %v", st, v)
	}
	if err := ts.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Down: the listener refuses connections.
	addr := h.Listener.Addr().String()
	h.Listener.Close()
	ts2 := newTestServer(t, cfg)
	if ts2.core.gateway != nil && len(ts2.core.gateway.Upstreams()) != 0 {
		t.Fatal("a down server is served")
	}
	if err := ts2.core.upstreams.sync(t.Context()); err == nil {
		t.Fatal("sync of a down server succeeded")
	}
	// Back on its address: the next sync serves it.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address is not free again: %v", err)
	}
	back := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return files.server }, nil)}
	go back.Serve(ln)
	defer back.Close()
	if err := ts2.core.upstreams.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ts2.core.gateway == nil || strings.Join(ts2.core.gateway.Upstreams(), ",") != "files" {
		t.Fatal("the server is not served once it answers")
	}
}
