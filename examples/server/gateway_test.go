package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"

	mcpgw "github.com/talosgo/talos/gateway/mcp"
)

// fileServer is a real MCP server with a read tool and a write tool.
type fileServer struct {
	server *mcp.Server
	writes atomic.Int64
	reads  atomic.Int64
}

type pathArgs struct {
	Path string `json:"path"`
	Data string `json:"data,omitempty"`
}

func newFileServer() *fileServer {
	fs := &fileServer{server: mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)}
	mcp.AddTool(fs.server, &mcp.Tool{Name: "read_file", Description: "read", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *mcp.CallToolRequest, a pathArgs) (*mcp.CallToolResult, any, error) {
			fs.reads.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "contents of " + a.Path}}}, nil, nil
		})
	mcp.AddTool(fs.server, &mcp.Tool{Name: "write_file", Description: "write"},
		func(_ context.Context, _ *mcp.CallToolRequest, a pathArgs) (*mcp.CallToolResult, any, error) {
			fs.writes.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wrote " + a.Path}}}, nil, nil
		})
	return fs
}

// inMemoryDialer connects the gateway to srv through in-memory transports.
func inMemoryDialer(srv *mcp.Server) upstreamDialer { return mcpgw.InMemoryUpstream(srv) }

// withGateway starts the gateway of ts on the given upstreams and mounts it.
func withGateway(t *testing.T, ts *testServer, registry *capability.ToolRegistry, upstreams map[string]*mcp.Server) {
	t.Helper()
	dialers := map[string]upstreamDialer{}
	for name, srv := range upstreams {
		dialers[name] = inMemoryDialer(srv)
	}
	if err := ts.core.enableGateway(t.Context(), ts.Server, dialers, registry); err != nil {
		t.Fatal(err)
	}
	ts.core.mountGateway(ts.mux, ts.core.gateway)
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	h    http.Header
	next http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.next.RoundTrip(r)
}

// mcpSession connects a as an MCP client to the gateway, presenting token.
func (a *agent) mcpSession(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: headerTransport{http.Header{talos.HeaderCapability: {token}}, a.client.Transport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: a.base + "/mcp", HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// talosCode extracts data.talos_code from a JSON-RPC error.
func talosCode(t *testing.T, err error) string {
	t.Helper()
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		t.Fatalf("not a JSON-RPC error: %v", err)
	}
	var data struct {
		Code string `json:"talos_code"`
	}
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatalf("error data %s: %v", je.Data, err)
	}
	return data.Code
}

func textOf(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestGatewayAuthorizesEveryCall(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")

	// A read-only token granting both tools: reads pass, writes are refused
	// because the registry classifies write_file as a write.
	ro := issue(t, ts, alice.did, true, grant("files", "read_file", "write_file"))
	cs := alice.mcpSession(t, ro.Token)
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	// tools/list shows only what the token allows: the write is not listed.
	if strings.Join(names, ",") != "files.read_file" {
		t.Fatalf("tools %v", names)
	}
	before := auditSize(t, ts)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/a"}})
	if err != nil || textOf(res) != "contents of /a" {
		t.Fatalf("read: %v %v", res, err)
	}
	_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/a", "data": "x"}})
	if code := talosCode(t, err); code != string(contracts.CodeDenied) {
		t.Fatalf("write under a read-only token: %s", code)
	}
	if files.writes.Load() != 0 {
		t.Fatal("the write reached the upstream")
	}
	if got := auditSize(t, ts); got != before+2 {
		t.Fatalf("audit grew by %d, want 2 (one per call)", got-before)
	}
}

func TestGatewayRegistryGrantsBudgetsAudit(t *testing.T) {
	ts := newTestServer(t, testConfig(t)) // an MCP call costs $0.001
	files := newFileServer()
	// An explicit registry that lists only read_file: write_file is exposed
	// by the upstream but unknown to the registry, so always denied.
	reg, err := capability.NewToolRegistry([]capability.ToolEntry{{Tool: "files", Action: "read_file", Class: capability.ClassRead}})
	if err != nil {
		t.Fatal(err)
	}
	withGateway(t, ts, reg, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-g")
	bob := newAgent(t, ts, "bob", "team-g")
	au := newAuditor(t, ts)
	start := auditSize(t, ts)

	both := issue(t, ts, alice.did, false, grant("files", "read_file", "write_file"))
	cs := alice.mcpSession(t, both.Token)
	read := &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/x"}}
	write := &mcp.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/x"}}
	if _, err := cs.CallTool(t.Context(), write); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("unknown tool: %v", err)
	}
	if files.writes.Load() != 0 {
		t.Fatal("an unknown tool reached the upstream")
	}
	// A token without the tool in its grants.
	other := issue(t, ts, bob.did, false, grant("files", "list"))
	bcs := bob.mcpSession(t, other.Token)
	if _, err := bcs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("outside the grant: %v", err)
	}
	// No token at all.
	ncs := bob.mcpSession(t, "")
	if _, err := ncs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeInvalidCapability) {
		t.Fatalf("without a capability: %v", err)
	}

	// Budgets: alice's key may spend $0.003, the team $0.004.
	putBudget(t, ts, "key:"+alice.did, "0.003", "hard")
	putBudget(t, ts, "team:team-g", "0.004", "hard")
	for i := 0; i < 3; i++ {
		if _, err := cs.CallTool(t.Context(), read); err != nil {
			t.Fatalf("call %d within budget: %v", i, err)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("beyond the key budget: %v", err)
	}
	if u := getBudget(t, ts, "key:"+alice.did, "team-g"); u.Used != "0.003" || u.Reserved != "0" {
		t.Fatalf("key budget %+v", u)
	}
	// Bob's key has no budget of its own, but the team has $0.001 left.
	bread := issue(t, ts, bob.did, false, grant("files", "read_file"))
	bcs2 := bob.mcpSession(t, bread.Token)
	if _, err := bcs2.CallTool(t.Context(), read); err != nil {
		t.Fatalf("bob within the team budget: %v", err)
	}
	if _, err := bcs2.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("beyond the team budget: %v", err)
	}
	if files.reads.Load() != 4 {
		t.Fatalf("upstream saw %d reads, want 4", files.reads.Load())
	}
	// Warn mode lets calls through beyond the limit; off ignores it.
	putBudget(t, ts, "team:team-g", "0.004", "warn")
	putBudget(t, ts, "key:"+alice.did, "0.003", "off")
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatalf("warn/off budgets: %v", err)
	}

	// Every call, allowed or denied, is in the audit log, verifiable under
	// the signed checkpoint.
	end := auditSize(t, ts)
	au.checkpoint()
	var calls, denied, warned int
	for i := start; i < end; i++ {
		ev := au.verifyIncluded(i)
		if ev.SurfaceID != opMCPGateway {
			continue
		}
		calls++
		if ev.Meta["budget_warned"] == true {
			warned++
		}
		if ev.Outcome != "success" {
			denied++
		}
	}
	if calls != 10 || denied != 5 || warned != 1 {
		t.Fatalf("audited %d gateway calls (%d refused, %d warned), want 10 (5, 1)", calls, denied, warned)
	}
}

func TestGatewayRateLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.RateLimits = map[string]rateSet{opMCPGateway: budget.PerMinute(2)}
	ts := newTestServer(t, cfg)
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read_file"))
	cs := alice.mcpSession(t, tok.Token)
	read := &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/x"}}
	for i := 0; i < 2; i++ {
		if _, err := cs.CallTool(t.Context(), read); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeRateLimited) {
		t.Fatalf("third call: %v", err)
	}
}

func TestGatewayReconnects(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	files := newFileServer()
	var sessions []*mcp.ServerSession
	dial := func(ctx context.Context) (mcp.Transport, error) {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := files.server.Connect(ctx, st, nil)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, ss)
		return ct, nil
	}
	if err := ts.core.enableGateway(t.Context(), ts.Server, map[string]upstreamDialer{"files": dial}, nil); err != nil {
		t.Fatal(err)
	}
	ts.core.mountGateway(ts.mux, ts.core.gateway)
	alice := newAgent(t, ts, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "read_file")).Token)
	read := &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/x"}}
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatal(err)
	}
	// The upstream drops the session: the call in flight fails with an
	// upstream error, the next one reconnects.
	sessions[0].Close()
	var code string
	for i := 0; i < 3; i++ {
		_, err := cs.CallTool(t.Context(), read)
		if err == nil {
			break
		}
		code = talosCode(t, err)
		if code != string(contracts.CodeMCPProtocol) && code != string(contracts.CodeUpstream5xx) {
			t.Fatalf("call on a dropped session: %s", code)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
	if len(sessions) != 2 {
		t.Fatalf("%d upstream sessions, want 2", len(sessions))
	}
}
