package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/identity"
)

// route is one route of the core surface, with its authentication.
type route struct {
	method, path string
	auth         string // "admin", "attested" or "public"
}

// coreRoutes lists every core route; {sid} and {gid} are replaced by an
// existing session and group.
func coreRoutes() []route {
	return []route{
		{"POST", "/v1/authorize", "attested"},
		{"POST", "/v1/capabilities", "admin"},
		{"POST", "/v1/capabilities/delegations", "admin"},
		{"POST", "/v1/capabilities/revocations", "admin"},
		{"PUT", "/v1/rbac/roles/r1", "admin"},
		{"PUT", "/v1/rbac/bindings/b1", "admin"},
		{"PUT", "/v1/principals/{did}", "admin"},
		{"PUT", "/v1/budgets/team:t1", "admin"},
		{"POST", "/a2a/sessions", "attested"},
		{"POST", "/a2a/sessions/{sid}/accept", "attested"},
		{"POST", "/a2a/sessions/{sid}/rotate", "attested"},
		{"POST", "/a2a/sessions/{sid}/frames", "attested"},
		{"POST", "/a2a/groups", "attested"},
		{"POST", "/a2a/groups/{gid}/members", "attested"},
		{"POST", "/mcp", "attested"},
		{"POST", "/v1/chat/completions", "attested"},
	}
}

// garbage bodies: each must be refused with a contract error.
var garbage = []struct {
	name string
	body []byte
}{
	{"malformed", []byte(`{"a":`)},
	{"not an object", []byte(`[1,2,3]`)},
	{"null", []byte(`null`)},
	{"unknown field", []byte(`{"zz_unknown":1}`)},
	{"duplicate keys", []byte(`{"team_id":"a","team_id":"b"}`)},
	{"wrong types", []byte(`{"team_id":5,"capability":7,"schema_id":false,"model":1}`)},
	{"bad utf-8", []byte("{\"team_id\":\"\xff\xfe\"}")},
	{"huge integer", []byte(`{"expires_in_seconds":123456789012345678901234567890}`)},
	{"oversized", append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("a"), 2<<20)...), []byte(`"}`)...)},
}

// coreState is what garbage must not change.
type coreState struct {
	audit             uint64
	sessions, groups  int
	adminDocs, scopes int
}

func stateOf(t *testing.T, ts *testServer) coreState {
	t.Helper()
	st := coreState{audit: auditSize(t, ts)}
	if m, ok := ts.core.a2a.store.(*a2a.MemStore); ok {
		st.sessions, st.groups = m.Len()
	}
	all, err := ts.core.adminStore.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.adminDocs = len(all)
	st.scopes = ts.core.budgets.Len()
	return st
}

// checkErrorBody checks that resp is the contract error body with the
// status of its code, and returns the code.
func checkErrorBody(t testing.TB, what string, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("%s: not a contract error body: %d %q: %v", what, resp.StatusCode, b, err)
	}
	if eb.Code == "" || eb.Message == "" || eb.Retryable == nil || resp.StatusCode != contracts.HTTPStatus(contracts.Code(eb.Code)) {
		t.Fatalf("%s: %d %+v", what, resp.StatusCode, eb)
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("%s: server error %d %+v", what, resp.StatusCode, eb)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: content type %q", what, ct)
	}
	return eb.Code
}

// badInputServer is a server with every core surface enabled (gateway and
// LLM proxy included) and a session and a group to aim at.
func badInputServer(t *testing.T) (ts *testServer, alice *agent, expand func(string) string) {
	t.Helper()
	llm := newFakeLLM(t)
	cfg := testConfig(t)
	cfg.LLMUpstream = llm.srv.URL + "/v1"
	ts = newTestServer(t, cfg)
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": newFileServer().server})
	alice = newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	_, _, sid := openSession(t, alice, bob)
	var g struct {
		GroupID string `json:"group_id"`
	}
	alice.call("POST", "/a2a/groups", map[string]any{"schema_id": "talos.a2a.group_create_request", "schema_version": "v1"}, &g)
	expand = strings.NewReplacer("{sid}", sid, "{gid}", g.GroupID, "{did}", alice.did).Replace
	return ts, alice, expand
}

// send sends body to rt on h, authenticated as rt.auth requires when
// possible (the attestation signer refuses bodies that are not JSON: those
// go unsigned).
func send(h http.Handler, routes *talos.RouteTable, cred string, signer *identity.AttestationSigner, rt route, path string, body []byte) *http.Response {
	req := httptest.NewRequest(rt.method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch rt.auth {
	case "admin":
		req.Header.Set("Authorization", "Bearer "+cred)
	case "attested":
		op, _ := routes.Opcode(req)
		if err := signer.Sign(req, op); err != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestBadInputEveryRoute(t *testing.T) {
	ts, alice, expand := badInputServer(t)
	before := stateOf(t, ts)
	for _, rt := range coreRoutes() {
		for _, g := range garbage {
			what := rt.method + " " + rt.path + " " + g.name
			resp := send(ts.Handler(), ts.core.routes, ts.cred, alice.signer, rt, expand(rt.path), g.body)
			if rt.path == "/mcp" && resp.StatusCode == 200 {
				// A JSON-RPC error answer from the MCP handler: it must
				// be an error, never a result.
				var m map[string]any
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if m["error"] == nil {
					t.Fatalf("%s: %v", what, m)
				}
				continue
			}
			code := checkErrorBody(t, what, resp)
			switch code {
			case string(contracts.CodeInvalidInput), string(contracts.CodeSchemaValidationError), string(contracts.CodeAuthInvalid):
			default:
				if rt.path != "/mcp" {
					t.Fatalf("%s: code %s", what, code)
				}
			}
		}
	}
	// Garbage changes no state. The only events it adds are the Kernel
	// middleware's: every attested A2A request is audited, refusals too.
	after := stateOf(t, ts)
	for k, n := range auditedSince(t, ts, before.audit) {
		if !strings.HasPrefix(k, opA2A+" ") || strings.HasSuffix(k, " success") {
			t.Errorf("garbage was audited as %q (%d)", k, n)
		}
	}
	after.audit = before.audit
	if after != before {
		t.Fatalf("garbage changed the state: %+v → %+v", before, after)
	}
}

func TestBadInputAttestation(t *testing.T) {
	ts, alice, expand := badInputServer(t)
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	body := mustJSON(authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"})
	signed := func(path, op string, mutate func(*http.Request)) *http.Response {
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := alice.signer.Sign(req, op); err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(req)
		}
		rec := httptest.NewRecorder()
		ts.Handler().ServeHTTP(rec, req)
		return rec.Result()
	}
	before := stateOf(t, ts)
	flip := func(r *http.Request) {
		sig := []byte(r.Header.Get("X-Talos-Signature"))
		sig[10] ^= 1
		if sig[10] == '-' || sig[10] == '_' || sig[10] < '0' {
			sig[10] = 'A'
		}
		r.Header.Set("X-Talos-Signature", string(sig))
	}
	cases := []struct {
		name   string
		path   string
		op     string
		mutate func(*http.Request)
		codes  []string
	}{
		{"bad signature", "/v1/authorize", opAuthorize, flip, []string{string(contracts.CodeAuthInvalid), string(contracts.CodeSchemaValidationError)}},
		{"signed for another route", "/v1/authorize", "a2a.session.create", nil, []string{string(contracts.CodeAuthInvalid)}},
		{"body changed after signing", "/v1/authorize", opAuthorize, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"capability":"x","tool":"files","action":"write"}`))
		}, []string{string(contracts.CodeAuthInvalid)}},
		{"no headers", "/v1/authorize", opAuthorize, func(r *http.Request) {
			for k := range r.Header {
				if strings.HasPrefix(k, "X-Talos-") {
					r.Header.Del(k)
				}
			}
		}, []string{string(contracts.CodeSchemaValidationError), string(contracts.CodeAuthInvalid)}},
		{"stale timestamp", "/v1/authorize", opAuthorize, func(r *http.Request) {
			r.Header.Set("X-Talos-Timestamp", fmt.Sprint(time.Now().Add(-10*time.Minute).Unix()))
		}, []string{string(contracts.CodeAuthInvalid)}},
		{"unregistered key id", "/v1/authorize", opAuthorize, func(r *http.Request) {
			w, _ := identity.GenerateWallet("x")
			r.Header.Set("X-Talos-Key-ID", w.DID().String())
		}, []string{string(contracts.CodeAuthInvalid)}},
		{"session route signed as group", expand("/a2a/sessions/{sid}/rotate"), "a2a.group.create", nil, []string{string(contracts.CodeAuthInvalid)}},
	}
	for _, c := range cases {
		code := checkErrorBody(t, c.name, signed(c.path, c.op, c.mutate))
		ok := false
		for _, want := range c.codes {
			ok = ok || code == want
		}
		if !ok {
			t.Fatalf("%s: code %s, want one of %v", c.name, code, c.codes)
		}
	}
	if after := stateOf(t, ts); after != before {
		t.Fatalf("refused requests changed the state: %+v → %+v", before, after)
	}

	// A replayed request: the first is answered (and audited), the second
	// is refused before it reaches the kernel.
	req := httptest.NewRequest("POST", "/v1/authorize", bytes.NewReader(body))
	if err := alice.signer.Sign(req, opAuthorize); err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(req.Context())
	replay.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	mid := stateOf(t, ts)
	rec = httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, replay)
	if code := checkErrorBody(t, "replay", rec.Result()); code != string(contracts.CodeReplayDetected) {
		t.Fatalf("replay: %s", code)
	}
	if after := stateOf(t, ts); after != mid {
		t.Fatalf("the replay changed the state: %+v → %+v", mid, after)
	}
}

func TestBadInputUnknownRoutes(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"}, {"GET", "/v1/authorize"}, {"PATCH", "/v1/authorize"}, {"POST", "/v1/authorize/extra"},
		{"GET", "/a2a"}, {"PUT", "/a2a/sessions"}, {"GET", "/mcp"}, {"POST", "/v1/chat/completions"},
		{"GET", "/v1/audit/proofs"}, {"DELETE", "/v1/identity"},
	} {
		checkErrorBody(t, c.method+" "+c.path, ts.do(t, c.method, c.path, "", nil))
	}
	// Query garbage on public and admin read routes.
	for _, p := range []string{
		"/v1/audit/proofs/inclusion?index=x&tree_size=1", "/v1/audit/proofs/inclusion?index=5&tree_size=2",
		"/v1/audit/proofs/inclusion", "/v1/audit/proofs/consistency?old_size=9&tree_size=1",
		"/v1/audit/proofs/consistency?old_size=-1&tree_size=1",
	} {
		checkErrorBody(t, p, ts.do(t, "GET", p, "", nil))
	}
	for _, p := range []string{
		"/v1/audit/events?limit=0", "/v1/audit/events?limit=abc", "/v1/audit/events?since=yesterday",
		"/v1/audit/events?cursor=%00", "/v1/audit/entries/abc", "/v1/audit/entries/-1",
		"/v1/budgets/nope", "/v1/principals/nope",
	} {
		checkErrorBody(t, p, ts.do(t, "GET", p, ts.cred, nil))
	}
}

// fuzzServer is a server with every core surface (the gateway and the LLM
// proxy included) for a fuzz target: one registered agent, and ids of
// sessions and groups that do not exist.
func fuzzServer(f *testing.F) (h http.Handler, routes *talos.RouteTable, cred string, signer *identity.AttestationSigner, expand func(string) string) {
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"choices":[],"usage":{"total_tokens":1}}`)
	}))
	f.Cleanup(llm.Close)
	cfg := DefaultConfig()
	cfg.DataDir = f.TempDir() + "/data"
	cfg.TraceExporter = "none"
	cfg.KEKRotation = 0
	cfg.LLMUpstream = llm.URL + "/v1"
	out := &syncBuffer{}
	cfg.stdout = out
	ctx := context.Background()
	s, err := New(ctx, cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close(ctx) })
	srv := newFileServer().server
	if err := s.core.enableGateway(ctx, s, map[string]upstreamDialer{"files": inMemoryDialer(srv)}, nil); err != nil {
		f.Fatal(err)
	}
	s.core.mountGateway(s.mux, s.core.gateway)
	w, err := identity.GenerateWallet("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	did := w.DID().String()
	s.core.principals.Cache(&principal{ID: did, DID: did, TeamID: "t"})
	if signer, err = identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()}); err != nil {
		f.Fatal(err)
	}
	expand = strings.NewReplacer("{sid}", contracts.NewUUIDv7(), "{gid}", contracts.NewUUIDv7(), "{did}", did).Replace
	return s.Handler(), s.core.routes, parseCredential(out.String()), signer, expand
}

// FuzzCoreRoutes drives every core route with arbitrary bodies: the server
// never fails with a 5xx and every refusal is a contract error body.
func FuzzCoreRoutes(f *testing.F) {
	for i := range coreRoutes() {
		for _, g := range garbage[:len(garbage)-1] {
			f.Add(uint8(i), g.body)
		}
	}
	f.Add(uint8(0), []byte(`{"capability":"","tool":"a","action":"b"}`))
	f.Add(uint8(6), []byte(`{"team_id":"t2"}`))
	f.Add(uint8(12), []byte(`{"schema_id":"talos.a2a.group_create_request","schema_version":"v1"}`))
	f.Add(uint8(14), []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read_file","arguments":{}}}`))
	f.Add(uint8(15), []byte(`{"model":"m","messages":[]}`))
	h, routes, cred, signer, expand := fuzzServer(f)
	f.Fuzz(func(t *testing.T, ri uint8, body []byte) {
		all := coreRoutes()
		rt := all[int(ri)%len(all)]
		resp := send(h, routes, cred, signer, rt, expand(rt.path), body)
		if resp.StatusCode >= 500 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s", rt.method, rt.path, resp.StatusCode, b)
		}
		if resp.StatusCode >= 400 {
			checkErrorBody(t, rt.method+" "+rt.path, resp)
		}
	})
}
