package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// fileServer is a real MCP server with a read tool and a write tool.
type fileServer struct {
	server        *sdk.Server
	reads, writes atomic.Int64
}

type pathArgs struct {
	Path string `json:"path"`
	Data string `json:"data,omitempty"`
}

func newFileServer() *fileServer {
	fs := &fileServer{server: sdk.NewServer(&sdk.Implementation{Name: "files", Version: "1"}, nil)}
	sdk.AddTool(fs.server, &sdk.Tool{Name: "read_file", Description: "read", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *sdk.CallToolRequest, a pathArgs) (*sdk.CallToolResult, any, error) {
			fs.reads.Add(1)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "contents of " + a.Path}}}, nil, nil
		})
	sdk.AddTool(fs.server, &sdk.Tool{Name: "write_file", Description: "write"},
		func(_ context.Context, _ *sdk.CallToolRequest, a pathArgs) (*sdk.CallToolResult, any, error) {
			fs.writes.Add(1)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "wrote " + a.Path}}}, nil, nil
		})
	return fs
}

// fixture is a gateway served over loopback HTTP behind a real Attester,
// deciding with a capability verifier, memory budgets and rate limits,
// auditing to a memory log.
type fixture struct {
	t       testing.TB
	root    *identity.Wallet
	log     *audit.Log
	budgets *budget.MemBudget
	routes  *talos.RouteTable
	gw      *Gateway
	srv     *httptest.Server
	files   *fileServer
	scopes  map[string]budget.Scope // by id: "key:<did>", "team:<team>"
	teams   map[string]string       // did → team; absent: AUTH_INVALID
}

type option func(*Config, *map[string]budget.Limit)

func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{t: t, files: newFileServer(), scopes: map[string]budget.Scope{}, teams: map[string]string{}}
	var err error
	if f.root, err = identity.GenerateWallet("root"); err != nil {
		t.Fatal(err)
	}
	logKey, _ := identity.GenerateWallet("log")
	ns, _ := audit.NewNoteSigner("talos.test/log", logKey.Signer())
	nv, _ := audit.NewVerifier("talos.test/log", logKey.PublicKey())
	if f.log, err = audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: nv}); err != nil {
		t.Fatal(err)
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{
		SurfaceID: {"decision_reason", "tool", "action", "error_code", "budget_reservation", "budget_warned", "cost_micros"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.budgets, err = budget.NewMemBudget(budget.MemBudgetConfig{}); err != nil {
		t.Fatal(err)
	}
	revs := capability.NewMemRevocationStore(nil)
	cfg := Config{
		Upstreams: map[string]Dialer{"files": InMemoryUpstream(f.files.server)},
		Cost:      1000,
		Team: func(_ context.Context, p identity.DID) (string, bool) {
			team, ok := f.teams[p.String()]
			return team, ok
		},
		Budget: func(_ context.Context, p identity.DID, team string, amount int64) *budget.ReserveRequest {
			var scopes []budget.Scope
			for _, id := range []string{"key:" + p.String(), "team:" + team} {
				if s, ok := f.scopes[id]; ok {
					scopes = append(scopes, s)
				}
			}
			if len(scopes) == 0 {
				return nil
			}
			return &budget.ReserveRequest{Scopes: scopes, Group: "team:" + team, Amount: amount,
				Meta: budget.Meta{KeyID: p.String(), TeamID: team, Surface: "mcp"}}
		},
	}
	var limits *budget.Limits
	cfg.NewKernelConfig = func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
		v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{f.root.DID()}, Revocations: revs, Registry: reg})
		if err != nil {
			return talos.KernelConfig{}, err
		}
		t.Cleanup(func() { v.Close() })
		return talos.KernelConfig{Authorizer: v, Limits: limits, Budget: f.budgets, Audit: f.log, Events: events}, nil
	}
	rates := map[string]budget.Limit{SurfaceID: budget.PerSecond(1000)}
	for _, o := range opts {
		o(&cfg, &rates)
	}
	limits, err = budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: SurfaceID, Limit: rates[SurfaceID]}, rates)
	if err != nil {
		t.Fatal(err)
	}
	if f.gw, err = New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.gw.Close() })
	if f.routes, err = talos.NewRouteTable([]talos.Route{Route()}); err != nil {
		t.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: f.routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: f.nonces()}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, att.Wrap(f.gw.Handler()))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// nonces is a replay store; the benchmark sends from one principal, so
// its per-principal quota is lifted.
func (f *fixture) nonces() identity.NonceStore {
	n, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 1 << 22, MaxPerPrincipal: 1 << 22, Rate: 1e9, Burst: 1 << 22})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// agent is a registered principal of team.
func (f *fixture) agent(team string) *identity.Wallet {
	w, err := identity.GenerateWallet("agent")
	if err != nil {
		f.t.Fatal(err)
	}
	f.teams[w.DID().String()] = team
	return w
}

func (f *fixture) issue(w *identity.Wallet, readOnly bool, actions ...string) string {
	tok, err := capability.Issue(f.root.Signer(), w.DID(), []capability.Grant{{Tool: "files", Actions: actions}},
		time.Now().Add(time.Hour), &capability.IssueOptions{ReadOnly: readOnly})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok.Encode()
}

// client returns the attested HTTP client of w presenting token.
func (f *fixture) client(w *identity.Wallet, token string) *http.Client {
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		f.t.Fatal(err)
	}
	return &http.Client{Transport: &identity.AttestingTransport{Signer: s, Routes: f.routes,
		Header: http.Header{talos.HeaderCapability: {token}}}}
}

// session connects w as an MCP client to the gateway, presenting token.
func (f *fixture) session(w *identity.Wallet, token string) *sdk.ClientSession {
	f.t.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(f.t.Context(), &sdk.StreamableClientTransport{
		Endpoint: f.srv.URL + "/mcp", HTTPClient: f.client(w, token), MaxRetries: -1, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		f.t.Fatalf("connect to the gateway: %v", err)
	}
	f.t.Cleanup(func() { cs.Close() })
	return cs
}

func (f *fixture) auditSize() uint64 {
	cp, err := f.log.Checkpoint(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return cp.Size
}

// talosCode extracts data.talos_code from a JSON-RPC error.
func talosCode(t *testing.T, err error) string {
	t.Helper()
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		t.Fatalf("not a JSON-RPC error: %v", err)
	}
	var data struct {
		Code   string `json:"talos_code"`
		Status int    `json:"http_status"`
	}
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatalf("error data %s: %v", je.Data, err)
	}
	if je.Code != -32000 || data.Status != contracts.HTTPStatus(contracts.Code(data.Code)) {
		t.Fatalf("deny error %d %s", je.Code, je.Data)
	}
	return data.Code
}

func textOf(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

var (
	read  = &sdk.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/a"}}
	write = &sdk.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/a", "data": "x"}}
)

func TestReadOnlyTokenAndOneAuditEventPerCall(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("team-a")
	cs := f.session(alice, f.issue(alice, true, "read_file", "write_file"))
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	// A read-only token sees only the reads it is granted.
	if strings.Join(names, ",") != "files.read_file" {
		t.Fatalf("tools %v", names)
	}
	before := f.auditSize()
	res, err := cs.CallTool(t.Context(), read)
	if err != nil || textOf(res) != "contents of /a" {
		t.Fatalf("read: %v %v", res, err)
	}
	if _, err = cs.CallTool(t.Context(), write); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("write under a read-only token: %v", err)
	}
	if f.files.writes.Load() != 0 {
		t.Fatal("the write reached the upstream")
	}
	if got := f.auditSize(); got != before+2 {
		t.Fatalf("audit grew by %d, want 2 (one per call)", got-before)
	}
	if c, _ := f.gw.Registry().Lookup("files", "write_file"); c.Class != capability.ClassWrite {
		t.Fatalf("derived class of write_file: %+v", c)
	}
}

func TestRegistryGrantsAndBudgets(t *testing.T) {
	reg, err := capability.NewToolRegistry([]capability.ToolEntry{{Tool: "files", Action: "read_file", Class: capability.ClassRead}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		c.Registry = reg
		nk := c.NewKernelConfig
		c.NewKernelConfig = func(r *capability.ToolRegistry) (talos.KernelConfig, error) {
			if r != reg {
				t.Error("NewKernelConfig was not given Config.Registry")
			}
			return nk(r)
		}
	})
	if f.gw.Kernel() == nil || f.gw.Registry() != reg {
		t.Fatal("Kernel() or Registry() not set")
	}
	alice, bob := f.agent("team-g"), f.agent("team-g")
	cs := f.session(alice, f.issue(alice, false, "read_file", "write_file"))
	// write_file is served but not in the registry: always denied.
	if _, err := cs.CallTool(t.Context(), write); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("unknown tool: %v", err)
	}
	if _, err := f.session(bob, f.issue(bob, false, "list")).CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("outside the grant: %v", err)
	}
	if _, err := f.session(bob, "").CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeInvalidCapability) {
		t.Fatalf("without a capability: %v", err)
	}
	// A principal the Team function does not know is refused.
	eve, _ := identity.GenerateWallet("eve")
	if _, err := f.session(eve, f.issue(eve, false, "read_file")).CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeAuthInvalid) {
		t.Fatalf("unregistered principal: %v", err)
	}
	// alice's key may spend 3000 micro-USD, the team 4000; a call costs 1000.
	f.scopes["key:"+alice.DID().String()] = budget.Scope{ID: "key:" + alice.DID().String(), Limit: 3000}
	f.scopes["team:team-g"] = budget.Scope{ID: "team:team-g", Limit: 4000}
	for i := 0; i < 3; i++ {
		if _, err := cs.CallTool(t.Context(), read); err != nil {
			t.Fatalf("call %d within budget: %v", i, err)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("beyond the key budget: %v", err)
	}
	bcs := f.session(bob, f.issue(bob, false, "read_file"))
	if _, err := bcs.CallTool(t.Context(), read); err != nil {
		t.Fatalf("bob within the team budget: %v", err)
	}
	if _, err := bcs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("beyond the team budget: %v", err)
	}
	if n := f.files.reads.Load(); n != 4 || f.files.writes.Load() != 0 {
		t.Fatalf("upstream saw %d reads, %d writes; want 4, 0", n, f.files.writes.Load())
	}
	// Every call is audited, the refused ones included, and verifies.
	var calls, refused int
	page, err := f.log.Query(t.Context(), audit.Query{SurfaceID: SurfaceID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Entries {
		calls++
		if e.Event.Outcome != "success" {
			refused++
		}
	}
	if _, err := f.log.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	if calls != 9 || refused != 5 {
		t.Fatalf("audited %d calls (%d refused), want 9 (5)", calls, refused)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(_ *Config, r *map[string]budget.Limit) { (*r)[SurfaceID] = budget.PerMinute(2) })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	for i := 0; i < 2; i++ {
		if _, err := cs.CallTool(t.Context(), read); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeRateLimited) {
		t.Fatalf("third call: %v", err)
	}
}

func TestReconnects(t *testing.T) {
	var sessions []*sdk.ServerSession
	files := newFileServer()
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		c.Upstreams = map[string]Dialer{"files": func(ctx context.Context) (sdk.Transport, error) {
			ct, st := sdk.NewInMemoryTransports()
			ss, err := files.server.Connect(ctx, st, nil)
			if err != nil {
				return nil, err
			}
			sessions = append(sessions, ss)
			return ct, nil
		}}
	})
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatal(err)
	}
	// The upstream drops the session: the call in flight fails with an
	// upstream error (never retried), the next one reconnects.
	sessions[0].Close()
	for i := 0; i < 3; i++ {
		_, err := cs.CallTool(t.Context(), read)
		if err == nil {
			break
		}
		if code := talosCode(t, err); code != string(contracts.CodeMCPProtocol) && code != string(contracts.CodeUpstream5xx) {
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

// TestHTTPEdge: unattested requests, bodies that are not one JSON-RPC
// message, case-folded duplicates and oversized bodies are refused with
// the contract error body before the MCP handler, and nothing is audited.
func TestHTTPEdge(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("t")
	tok := f.issue(alice, false, "read_file")
	before := f.auditSize()
	post := func(c *http.Client, body []byte) (int, string) {
		resp, err := c.Post(f.srv.URL+"/mcp", "application/json", bytes.NewReader(body))
		if contracts.CodeOf(err) == contracts.CodeInvalidInput {
			// The client's signer refuses to attest it (not canonical
			// JSON): the gateway's own check must refuse it too.
			return 0, string(contracts.CodeOf(CheckJSONRPC(body)))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb struct {
			Code string `json:"code"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			if err := json.Unmarshal(raw, &eb); err != nil || resp.StatusCode != contracts.HTTPStatus(contracts.Code(eb.Code)) {
				t.Fatalf("%q: %d %s", body, resp.StatusCode, raw)
			}
		}
		return resp.StatusCode, eb.Code
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read_file","arguments":{"path":"/a"}}}`
	if _, code := post(http.DefaultClient, []byte(call)); code != string(contracts.CodeAuthInvalid) {
		t.Fatalf("unattested: %s", code)
	}
	c := f.client(alice, tok)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read_file","arguments":{"path":"/a","PATH":"/etc"}}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}`,
		`{"jsonrpc":"1.0","id":1,"method":"tools/list"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`,
		`{"jsonrpc":"2.0","id":1,"method":7}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","pad":"` + strings.Repeat("a", MaxBody) + `"}`,
	} {
		if _, code := post(c, []byte(body)); code != string(contracts.CodeInvalidInput) {
			t.Fatalf("%.80s: %s", body, code)
		}
	}
	if f.files.reads.Load() != 0 || f.auditSize() != before {
		t.Fatal("a refused body reached the upstream or the audit log")
	}
	// The handler refuses requests without a principal even when mounted
	// without an Attester.
	rec := httptest.NewRecorder()
	f.gw.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/mcp", strings.NewReader(call)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("bare handler: %d %s", rec.Code, rec.Body)
	}
}

func TestNewChecksConfig(t *testing.T) {
	files := newFileServer()
	up := map[string]Dialer{"files": InMemoryUpstream(files.server)}
	nk := func(*capability.ToolRegistry) (*talos.Kernel, error) { return nil, nil }
	for name, cfg := range map[string]Config{
		"no kernel":             {Upstreams: up},
		"kernel, no registry":   {Kernel: &talos.Kernel{}, Upstreams: up},
		"no upstreams":          {NewKernel: nk},
		"dotted upstream":       {NewKernel: nk, Upstreams: map[string]Dialer{"fi.les": InMemoryUpstream(files.server)}},
		"nil dialer":            {NewKernel: nk, Upstreams: map[string]Dialer{"files": nil}},
		"NewKernel returns nil": {NewKernel: nk, Upstreams: up},
	} {
		if _, err := New(t.Context(), cfg); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An upstream that cannot be reached fails New.
	bad := map[string]Dialer{"down": func(context.Context) (sdk.Transport, error) { return nil, errors.New("refused") }}
	if _, err := New(t.Context(), Config{NewKernel: nk, Upstreams: bad}); err == nil {
		t.Error("unreachable upstream accepted")
	}
}

// TestConfigKernel: a Kernel given directly, with the Registry its
// verifier classifies tools with, decides the calls.
func TestConfigKernel(t *testing.T) {
	reg, err := capability.NewToolRegistry([]capability.ToolEntry{{Tool: "files", Action: "read_file", Class: capability.ClassRead}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		kc, err := c.NewKernelConfig(reg)
		if err != nil {
			t.Fatal(err)
		}
		k, err := talos.NewKernel(kc)
		if err != nil {
			t.Fatal(err)
		}
		c.Kernel, c.Authorizer, c.NewKernelConfig, c.Registry = k, kc.Authorizer, nil, reg
	})
	if f.gw.Registry() != reg {
		t.Fatal("Registry() is not Config.Registry")
	}
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file", "write_file"))
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(t.Context(), write); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("a tool outside the registry: %v", err)
	}
}
