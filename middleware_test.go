package talos_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	verifier           *capability.Verifier
	handler            http.Handler
	signer             *identity.AttestationSigner
	tok                *capability.Token
	decisions          []capability.Decision
}

func wallet(t *testing.T, b byte) *identity.Wallet {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = b
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func newMW(t *testing.T) *mwFixture {
	t.Helper()
	f := &mwFixture{root: wallet(t, 1), agent: wallet(t, 2), other: wallet(t, 3)}
	routes, err := talos.NewRouteTable([]talos.Route{
		{Method: "POST", Path: "/v1/fs/read", Tool: "fs", Action: "read"},
		{Method: "POST", Path: "/v1/fs/delete", Tool: "fs", Action: "delete"},
	})
	if err != nil {
		t.Fatal(err)
	}
	att, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: routes.Opcode, Keys: identity.DIDKeys(nil), Nonces: identity.NewMemoryNonceStore(1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.verifier, err = capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{f.root.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.verifier.Close() })
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{
		Routes: routes, Attestation: att, Authorizer: f.verifier,
		OnDecision: func(_ *http.Request, d capability.Decision, _ error) { f.decisions = append(f.decisions, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.handler = mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := talos.DecisionFromContext(r.Context())
		if !ok || !d.Allowed {
			t.Error("handler reached without an allowing decision")
		}
		w.Write([]byte("ok " + d.Tool + "/" + d.Action))
	}))
	f.signer = signerFor(t, f.agent)
	f.tok, err = capability.Issue(f.root, f.agent.DID().String(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}},
		time.Now().Add(time.Hour), capability.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func signerFor(t *testing.T, w *identity.Wallet) *identity.AttestationSigner {
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
	if body.Code != code || w.Code != contracts.HTTPStatus(code) || body.Retryable == nil {
		t.Fatalf("status %d body %s, want %s (%d)", w.Code, w.Body, code, contracts.HTTPStatus(code))
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
	wantDenied(t, w, contracts.CodeDenied)
	if d := f.decisions[len(f.decisions)-1]; d.Reason != capability.ReasonScopeMismatch {
		t.Fatalf("reason %s", d.Reason)
	}
	w, _ = f.do(t, "/v1/fs/read", "", "", f.signer)
	wantDenied(t, w, contracts.CodeInvalidCapability)
	// Someone else presenting the agent's token: holder binding denies.
	w, _ = f.do(t, "/v1/fs/read", enc, "", signerFor(t, f.other))
	wantDenied(t, w, contracts.CodeDenied)
	if d := f.decisions[len(f.decisions)-1]; d.Reason != capability.ReasonHolderMismatch {
		t.Fatalf("reason %s", d.Reason)
	}
	w, _ = f.do(t, "/v1/fs/read", enc, "", nil)
	if w.Code < 400 || w.Code >= 500 {
		t.Fatalf("unsigned request: %d", w.Code)
	}
	w, _ = f.do(t, "/v1/nothing", enc, "", f.signer)
	wantDenied(t, w, contracts.CodeNotFound)
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
	wantDenied(t, rec, contracts.CodeReplayDetected)
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
	wantDenied(t, w, contracts.CodeAuthRevoked)
	if _, err := talos.NewMiddleware(talos.MiddlewareConfig{}); err == nil {
		t.Fatal("empty config accepted")
	}
	if _, err := talos.NewRouteTable([]talos.Route{{Method: "get", Path: "/x", Tool: "a", Action: "b"}}); err == nil {
		t.Fatal("lower-case method accepted")
	}
}
