package talos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

type mwFixture struct {
	root, agent, other *identity.Wallet
	routes             *talos.RouteTable
	verifier           *capability.Verifier
	handler            http.Handler
	signer             *identity.AttestationSigner
	tok                *capability.Token
	decisions          []capability.Decision
}

func wallet(t testing.TB, b byte) *identity.Wallet {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = b
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustRoutes(t testing.TB, routes ...talos.Route) *talos.RouteTable {
	t.Helper()
	rt, err := talos.NewRouteTable(routes)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func newAttester(t testing.TB, routes *talos.RouteTable, unmatched talos.Unmatched) *talos.Attester {
	t.Helper()
	a, err := talos.NewAttester(talos.AttesterConfig{
		Routes:      routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 16)},
		Unmatched:   unmatched,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newVerifier(t testing.TB, root *identity.Wallet) *capability.Verifier {
	t.Helper()
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{root.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func issue(t testing.TB, root, agent *identity.Wallet, grants ...capability.Grant) *capability.Token {
	t.Helper()
	tok, err := capability.Issue(root.Signer(), agent.DID(), grants, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newMW(t *testing.T) *mwFixture {
	t.Helper()
	f := &mwFixture{root: wallet(t, 1), agent: wallet(t, 2), other: wallet(t, 3)}
	f.routes = mustRoutes(t,
		talos.Route{Pattern: "POST /v1/fs/read", Tool: "fs", Action: "read"},
		talos.Route{Pattern: "POST /v1/fs/delete", Tool: "fs", Action: "delete"},
	)
	f.verifier = newVerifier(t, f.root)
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{
		Attester: newAttester(t, f.routes, talos.Deny), Authorizer: f.verifier,
		OnDecision: func(_ *http.Request, d capability.Decision, _ error) { f.decisions = append(f.decisions, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.handler = mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := talos.DecisionFrom(r.Context())
		p, pok := talos.PrincipalFrom(r.Context())
		if !ok || !d.Allowed || !pok || p != d.Principal {
			t.Error("handler reached without an allowing decision and its principal")
		}
		w.Write([]byte("ok " + d.Tool + "/" + d.Action))
	}))
	f.signer = signerFor(t, f.agent)
	f.tok = issue(t, f.root, f.agent, capability.Grant{Tool: "fs", Actions: []string{"read"}})
	return f
}

func signerFor(t testing.TB, w *identity.Wallet) *identity.AttestationSigner {
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends a request; signer nil means unsigned.
func (f *mwFixture) do(t *testing.T, path, capHeader, session string, signer *identity.AttestationSigner) (*httptest.ResponseRecorder, *http.Request) {
	t.Helper()
	r := httptest.NewRequest("POST", path, bytes.NewReader([]byte(`{"path":"/data"}`)))
	if capHeader != "" {
		r.Header.Set(talos.HeaderCapability, capHeader)
	}
	if session != "" {
		r.Header.Set(talos.HeaderSession, session)
	}
	if signer != nil {
		op := "fs.read"
		if strings.HasSuffix(path, "delete") {
			op = "fs.delete"
		}
		if err := signer.Sign(r, op); err != nil {
			t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w, r
}

func wantDenied(t *testing.T, w *httptest.ResponseRecorder, code string) {
	t.Helper()
	var body struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Retryable *bool  `json:"retryable"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("status %d, body %q: %v", w.Code, w.Body, err)
	}
	if body.Code != code || w.Code != contracts.HTTPStatus(contracts.Code(code)) || body.Retryable == nil {
		t.Fatalf("status %d body %s, want %s (%d)", w.Code, w.Body, code, contracts.HTTPStatus(contracts.Code(code)))
	}
	for _, leak := range []string{"SCOPE", "HOLDER", "signature", "did:key"} {
		if strings.Contains(body.Message, leak) {
			t.Fatalf("denial message leaks %q: %s", leak, body.Message)
		}
	}
}

func TestMiddleware(t *testing.T) {
	f := newMW(t)
	enc := f.tok.Encode()
	w, _ := f.do(t, "/v1/fs/read", enc, "", f.signer)
	if w.Code != 200 || w.Body.String() != "ok fs/read" {
		t.Fatalf("allowed request: %d %s", w.Code, w.Body)
	}
	if d := f.decisions[len(f.decisions)-1]; !d.Allowed || d.CapabilityHash != f.tok.Hash() || d.Principal != f.agent.DID() {
		t.Fatalf("decision %+v", d)
	}
	w, _ = f.do(t, "/v1/fs/delete", enc, "", f.signer)
	wantDenied(t, w, string(contracts.CodeDenied))
	if d := f.decisions[len(f.decisions)-1]; d.Reason != capability.ReasonScopeMismatch {
		t.Fatalf("reason %s", d.Reason)
	}
	w, _ = f.do(t, "/v1/fs/read", "", "", f.signer)
	wantDenied(t, w, string(contracts.CodeInvalidCapability))
	// Someone else presenting the agent's token: holder binding denies.
	w, _ = f.do(t, "/v1/fs/read", enc, "", signerFor(t, f.other))
	wantDenied(t, w, string(contracts.CodeDenied))
	if d := f.decisions[len(f.decisions)-1]; d.Reason != capability.ReasonHolderMismatch {
		t.Fatalf("reason %s", d.Reason)
	}
	// No attestation at all: 401 AUTH_INVALID, with a challenge.
	w, _ = f.do(t, "/v1/fs/read", enc, "", nil)
	wantDenied(t, w, string(contracts.CodeAuthInvalid))
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("unsigned request: %d %v", w.Code, w.Header())
	}
	w, _ = f.do(t, "/v1/nothing", enc, "", f.signer)
	wantDenied(t, w, string(contracts.CodeNotFound))
	// Replaying a signed request.
	r := httptest.NewRequest("POST", "/v1/fs/read", bytes.NewReader([]byte(`{}`)))
	r.Header.Set(talos.HeaderCapability, enc)
	if err := f.signer.Sign(r, "fs.read"); err != nil {
		t.Fatal(err)
	}
	hdr := r.Header.Clone()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	r2 := httptest.NewRequest("POST", "/v1/fs/read", bytes.NewReader([]byte(`{}`)))
	r2.Header = hdr
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, r2)
	wantDenied(t, rec, string(contracts.CodeReplayDetected))
	// A request signed for another route's opcode does not verify here.
	r3 := httptest.NewRequest("POST", "/v1/fs/read", bytes.NewReader([]byte(`{}`)))
	r3.Header.Set(talos.HeaderCapability, enc)
	if err := f.signer.Sign(r3, "fs.delete"); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, r3)
	wantDenied(t, rec, string(contracts.CodeAuthInvalid))
	// Sessions: bind once, then send only the session.
	w, _ = f.do(t, "/v1/fs/read", enc, "sess-1", f.signer)
	if w.Code != 200 {
		t.Fatalf("binding request: %d", w.Code)
	}
	w, _ = f.do(t, "/v1/fs/read", "", "sess-1", f.signer)
	if w.Code != 200 {
		t.Fatalf("session request: %d %s", w.Code, w.Body)
	}
	// Revocation.
	if err := f.verifier.Revoke(context.Background(), f.tok); err != nil {
		t.Fatal(err)
	}
	w, _ = f.do(t, "/v1/fs/read", enc, "", f.signer)
	wantDenied(t, w, string(contracts.CodeAuthRevoked))
	if _, err := talos.NewMiddleware(talos.MiddlewareConfig{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

// muxFixture is an ordinary ServeMux with a public route, two protected
// ones, and a more specific route the table does not list, wrapped whole.
type muxFixture struct {
	root, agent *identity.Wallet
	signer      *identity.AttestationSigner
	tok         string
	served      []string // patterns that ran, in order
}

func (f *muxFixture) mux(t *testing.T) *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range []string{"GET /health", "POST /tools/{id}/run", "GET /tools/{id}", "POST /tools/admin/run"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			f.served = append(f.served, r.Pattern)
			if _, ok := talos.PrincipalFrom(r.Context()); ok != (p == "POST /tools/{id}/run" || p == "GET /tools/{id}") {
				t.Errorf("%s: principal in context %v", p, ok)
			}
			w.Write([]byte(r.PathValue("id")))
		})
	}
	return mux
}

func newMuxFixture(t *testing.T) *muxFixture {
	f := &muxFixture{root: wallet(t, 1), agent: wallet(t, 2)}
	f.signer = signerFor(t, f.agent)
	f.tok = issue(t, f.root, f.agent, capability.Grant{Tool: "tools", Actions: []string{"run", "get"}}).Encode()
	return f
}

func (f *muxFixture) send(t *testing.T, h http.Handler, method, target, opcode string) *httptest.ResponseRecorder {
	t.Helper()
	var body []byte
	if method == "POST" {
		body = []byte(`{"arg":1}`)
	}
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Header.Set(talos.HeaderCapability, f.tok)
	if opcode != "" {
		if err := f.signer.Sign(r, opcode); err != nil {
			t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestWholeMux wraps a whole ServeMux serving /health, /tools/{id}/run,
// /tools/{id} (GET) and /tools/admin/run and checks allow, deny and
// pass-through for each route, under both Unmatched policies.
func TestWholeMux(t *testing.T) {
	routes := []talos.Route{
		{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"},
		{Pattern: "GET /tools/{name}", Tool: "tools", Action: "get"}, // another wildcard name than the mux's
	}
	for _, tc := range []struct {
		unmatched talos.Unmatched
		health    int // GET /health, unsigned
		admin     int // POST /tools/admin/run, signed for tools.run
	}{
		{talos.Deny, http.StatusNotFound, http.StatusNotFound},
		{talos.PassThrough, http.StatusOK, http.StatusOK},
	} {
		t.Run(map[talos.Unmatched]string{talos.Deny: "deny", talos.PassThrough: "passthrough"}[tc.unmatched], func(t *testing.T) {
			f := newMuxFixture(t)
			mw, err := talos.NewMiddleware(talos.MiddlewareConfig{
				Attester: newAttester(t, mustRoutes(t, routes...), tc.unmatched), Authorizer: newVerifier(t, f.root),
			})
			if err != nil {
				t.Fatal(err)
			}
			h := mw.Wrap(f.mux(t))
			if w := f.send(t, h, "GET", "/health", ""); w.Code != tc.health {
				t.Fatalf("/health: %d %s", w.Code, w.Body)
			}
			if w := f.send(t, h, "POST", "/tools/7/run", "tools.run"); w.Code != 200 || w.Body.String() != "7" {
				t.Fatalf("/tools/7/run: %d %s", w.Code, w.Body)
			}
			if w := f.send(t, h, "GET", "/tools/7", "tools.get"); w.Code != 200 {
				t.Fatalf("GET /tools/7: %d %s", w.Code, w.Body)
			}
			// Unsigned on a protected route: 401 under both policies.
			if w := f.send(t, h, "POST", "/tools/7/run", ""); w.Code != http.StatusUnauthorized {
				t.Fatalf("unsigned /tools/7/run: %d %s", w.Code, w.Body)
			}
			// Signed for the wrong opcode.
			if w := f.send(t, h, "POST", "/tools/7/run", "tools.get"); w.Code != http.StatusUnauthorized {
				t.Fatalf("wrong opcode: %d %s", w.Code, w.Body)
			}
			// The mux serves /tools/admin/run from its own, more specific
			// pattern, which the table does not list: it is unmatched, never
			// authorized as /tools/{id}/run.
			if w := f.send(t, h, "POST", "/tools/admin/run", "tools.run"); w.Code != tc.admin {
				t.Fatalf("/tools/admin/run: %d %s", w.Code, w.Body)
			}
			// An escaped slash is one segment: /tools/a%2Fb/run is tool "a/b".
			if w := f.send(t, h, "POST", "/tools/a%2Fb/run", "tools.run"); w.Code != 200 || w.Body.String() != "a/b" {
				t.Fatalf("/tools/a%%2Fb/run: %d %s", w.Code, w.Body)
			}
			// A method the table does not route.
			if w := f.send(t, h, "DELETE", "/tools/7/run", "tools.run"); tc.unmatched == talos.Deny && w.Code != http.StatusNotFound {
				t.Fatalf("DELETE: %d %s", w.Code, w.Body)
			}
			want := []string{"POST /tools/{id}/run", "GET /tools/{id}", "POST /tools/{id}/run"}
			if tc.unmatched == talos.PassThrough {
				want = []string{"GET /health", "POST /tools/{id}/run", "GET /tools/{id}", "POST /tools/admin/run", "POST /tools/{id}/run"}
			}
			if strings.Join(f.served, ",") != strings.Join(want, ",") {
				t.Fatalf("served %q, want %q", f.served, want)
			}
		})
	}
}

// TestPerRouteMount mounts the middleware on single ServeMux routes (r.Pattern
// names the route) and on a mux nested under a prefix.
func TestPerRouteMount(t *testing.T) {
	f := newMuxFixture(t)
	routes := mustRoutes(t, talos.Route{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"})
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{Attester: newAttester(t, routes, talos.Deny), Authorizer: newVerifier(t, f.root)})
	if err != nil {
		t.Fatal(err)
	}
	run := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ran " + r.PathValue("id"))) })
	mux := http.NewServeMux()
	mux.Handle("POST /tools/{id}/run", mw.Wrap(run))
	mux.Handle("POST /other/{id}/run", mw.Wrap(run)) // mounted on a route the table does not list
	if w := f.send(t, mux, "POST", "/tools/x/run", "tools.run"); w.Code != 200 || w.Body.String() != "ran x" {
		t.Fatalf("mounted route: %d %s", w.Code, w.Body)
	}
	if w := f.send(t, mux, "POST", "/other/x/run", "tools.run"); w.Code != http.StatusNotFound {
		t.Fatalf("route outside the table: %d %s", w.Code, w.Body)
	}
}

func TestAttesterOnly(t *testing.T) {
	f := newMuxFixture(t)
	routes := mustRoutes(t,
		talos.Route{Pattern: "POST /sessions/{id}/frames", Opcode: "a2a.frame.send", AttestOnly: true},
	)
	att := newAttester(t, routes, talos.Deny)
	var got identity.DID
	h := att.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = talos.PrincipalFrom(r.Context())
		rt, _ := talos.RouteFrom(r.Context())
		a, _ := talos.AttestationFrom(r.Context())
		if rt.Opcode != "a2a.frame.send" || a.Opcode != rt.Opcode || a.DID != got {
			t.Errorf("route %+v attestation %+v", rt, a)
		}
		if _, ok := talos.DecisionFrom(r.Context()); ok {
			t.Error("attestation only, but a decision in the context")
		}
	}))
	if w := f.send(t, h, "POST", "/sessions/s1/frames", "a2a.frame.send"); w.Code != 200 || got != f.agent.DID() {
		t.Fatalf("attested: %d %s, principal %v", w.Code, w.Body, got)
	}
	if w := f.send(t, h, "POST", "/sessions/s1/frames", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", w.Code)
	}
	// Outside any middleware there is no principal.
	if _, ok := talos.PrincipalFrom(context.Background()); ok {
		t.Fatal("principal from an empty context")
	}
	for _, cfg := range []talos.AttesterConfig{
		{},
		{Routes: routes},
		{Routes: routes, Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1),
			Opcode: func(*http.Request) (string, error) { return "x", nil }}},
		{Routes: routes, Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1)}, Unmatched: 7},
	} {
		if _, err := talos.NewAttester(cfg); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("config %+v: %v", cfg, err)
		}
	}
}

func TestRouteTable(t *testing.T) {
	for _, bad := range [][]talos.Route{
		{{Pattern: "get /x", Tool: "a", Action: "b"}},
		{{Pattern: "POST x", Tool: "a", Action: "b"}},
		{{Pattern: "POST /x/{", Tool: "a", Action: "b"}},
		{{Pattern: "POST /x/{a}/{a}", Tool: "a", Action: "b"}},
		{{Pattern: "POST /x", Tool: "a"}},
		{{Pattern: "POST /x", Opcode: "x", AttestOnly: true, Tool: "a"}},
		{{Pattern: "POST /x", AttestOnly: true}},
		{{Pattern: "POST /x/{id}", Tool: "a", Action: "b"}, {Pattern: "POST /x/{name}", Tool: "a", Action: "c"}},
		{{Pattern: "POST /x/{id}/y", Tool: "a", Action: "b"}, {Pattern: "POST /x/z/{id}", Tool: "a", Action: "c"}}, // ServeMux conflict
	} {
		if _, err := talos.NewRouteTable(bad); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("%+v accepted (%v)", bad, err)
		}
	}
	rt := mustRoutes(t,
		talos.Route{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"},
		talos.Route{Pattern: "/files/{path...}", Tool: "files", Action: "read", Opcode: "files.any"},
	)
	// A wildcard is never a literal path, and the table matches like the mux.
	for _, tc := range []struct {
		method, target, op string
	}{
		{"POST", "/tools/7/run", "tools.run"},
		{"POST", "/tools/a%2Fb/run", "tools.run"},
		{"POST", "/tools/{id}/run", "tools.run"},
		{"GET", "/tools/7/run", ""},
		{"POST", "/tools/a/b/run", ""},
		{"GET", "/files/a/b/c", "files.any"},
		{"DELETE", "/files/x", "files.any"},
	} {
		op, err := rt.Opcode(httptest.NewRequest(tc.method, tc.target, nil))
		if op != tc.op || (tc.op == "") != (err != nil) {
			t.Errorf("%s %s: opcode %q, %v; want %q", tc.method, tc.target, op, err, tc.op)
		}
	}
	// Router templates: wildcard names do not matter; method-less routes
	// match every method.
	for _, tc := range []struct{ method, pattern, op string }{
		{"POST", "POST /tools/{id}/run", "tools.run"},
		{"POST", "/tools/{tool}/run", "tools.run"},
		{"GET", "/tools/{tool}/run", ""},
		{"GET", "/files/{p...}", "files.any"},
		{"GET", "GET /files/{rest...}", "files.any"},
		{"GET", "/files/{p}", ""},
		{"POST", "/tools/7/run", ""},
	} {
		r, ok := rt.Match(tc.method, tc.pattern)
		if ok != (tc.op != "") || r.Opcode != tc.op {
			t.Errorf("Match(%s, %s) = %+v, %v; want %q", tc.method, tc.pattern, r, ok, tc.op)
		}
	}
	if ops := rt.Opcodes(); len(ops) != 2 || ops["POST /tools/{id}/run"] != "tools.run" {
		t.Fatalf("opcodes %v", ops)
	}
	// Inside a ServeMux, r.Pattern decides.
	r := httptest.NewRequest("POST", "/anything", nil)
	r.Pattern = "POST /tools/{id}/run"
	if op, _ := rt.Opcode(r); op != "tools.run" {
		t.Fatalf("by r.Pattern: %q", op)
	}
	r.Pattern = "POST /anything"
	if _, ok := rt.Lookup(r); ok {
		t.Fatal("a mux pattern outside the table matched")
	}
}

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		code, msg  string
		retry      bool
		hasDetails bool
	}{
		{contracts.New(contracts.CodeInvalidInput, "bad field"), 400, string(contracts.CodeInvalidInput), "bad field", false, false},
		{&contracts.Error{Code: contracts.CodeRateLimited, Message: "slow down", Retryable: true, Details: map[string]any{"n": 1}}, 429, string(contracts.CodeRateLimited), "slow down", true, true},
		{contracts.Wrap(contracts.CodeInternal, "pg: password=hunter2", errors.New("x")), 500, string(contracts.CodeInternal), "internal error", false, false},
		{errors.New("dial tcp 10.0.0.1: secret"), 500, string(contracts.CodeInternal), "internal error", false, false},
		{fmt.Errorf("wrapped: %w", contracts.New(contracts.CodeNotFound, "no such session")), 404, string(contracts.CodeNotFound), "no such session", false, false},
	} {
		w := httptest.NewRecorder()
		talos.WriteError(w, httptest.NewRequest("GET", "/", nil), tc.err)
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if w.Code != tc.status || body["code"] != tc.code || body["message"] != tc.msg || body["retryable"] != tc.retry ||
			(body["details"] != nil) != tc.hasDetails || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %s", tc.err, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), "10.0.0.1") {
			t.Errorf("leak: %s", w.Body)
		}
	}
}

// TestClientRouteTable: a table built from a server's published opcodes
// gives the client the opcodes the server verifies.
func TestClientRouteTable(t *testing.T) {
	server := mustRoutes(t,
		talos.Route{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"},
		talos.Route{Pattern: "GET /rooms/{id}", Opcode: "rooms.get", AttestOnly: true},
	)
	client, err := talos.NewClientRouteTable(server.Opcodes())
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/tools/x/run", "/rooms/lobby"} {
		method := "POST"
		if strings.HasPrefix(target, "/rooms") {
			method = "GET"
		}
		r := httptest.NewRequest(method, target, nil)
		want, _ := server.Opcode(r)
		if got, err := client.Opcode(r); err != nil || got != want {
			t.Errorf("%s: client %q (%v), server %q", target, got, err, want)
		}
	}
	if _, err := talos.NewClientRouteTable(map[string]string{"POST /x": ""}); err == nil {
		t.Fatal("a route without an opcode accepted")
	}
}
