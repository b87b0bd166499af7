package identity_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

var t0 = time.Unix(1700000000, 0)

type signed struct {
	w      *identity.Wallet
	signer *identity.AttestationSigner
}

func newSigned(t testing.TB, now time.Time) signed {
	t.Helper()
	w := mustWallet(t, seedN(11))
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{
		Signer: w.Signer(),
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return signed{w: w, signer: s}
}

// serverRequest signs a client request and turns it into what a server
// handler receives.
func (s signed) serverRequest(t testing.TB, method, target, body, opcode string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://api.example"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.signer.Sign(req, opcode); err != nil {
		t.Fatal(err)
	}
	var srvBody io.Reader
	if body != "" {
		srvBody = strings.NewReader(body)
	}
	srv := httptest.NewRequest(method, target, srvBody)
	srv.Header = req.Header.Clone()
	return srv
}

func TestAttestationRoundTrip(t *testing.T) {
	s := newSigned(t, t0)
	store := identity.NewMemNonceStore(100)
	v := newVerifier(t, s.w, t0, "llm.chat.completions", store)
	body := `{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}`
	r := s.serverRequest(t, http.MethodPost, "/v1/chat/completions?b=2&a=1", body, "llm.chat.completions")
	if got := r.Header.Get(identity.HeaderNonce); len(got) != 22 {
		t.Fatalf("default nonce %q, want 22 base64url characters", got)
	}
	a, err := v.Verify(r)
	if err != nil {
		t.Fatal(err)
	}
	if a.DID != s.w.DID() || !a.Timestamp.Equal(t0) {
		t.Fatalf("attestation %+v", a)
	}
	rest, _ := io.ReadAll(r.Body)
	if string(rest) != body {
		t.Fatalf("body for the next handler %q", rest)
	}
	// Semantically equal JSON (other whitespace and key order) verifies too:
	// the body is canonicalized.
	r2 := s.serverRequest(t, http.MethodPost, "/v1/x", `{"b":1,"a":[1,2]}`, "op")
	r2.Body = io.NopCloser(strings.NewReader("{ \"a\" : [1,2], \"b\" : 1 }"))
	if _, err := newVerifier(t, s.w, t0, "op", store).Verify(r2); err != nil {
		t.Fatalf("reformatted body: %v", err)
	}
}

func TestAttestationRejects(t *testing.T) {
	s := newSigned(t, t0)
	other := mustWallet(t, seedN(12))
	good := func() *http.Request { return s.serverRequest(t, http.MethodPost, "/v1/a?x=1", `{"k":1}`, "op") }
	cases := []struct {
		name   string
		mutate func(r *http.Request)
		now    time.Time
		code   string
	}{
		{"missing header", func(r *http.Request) { r.Header.Del(identity.HeaderNonce) }, t0, string(contracts.CodeSchemaValidationError)},
		{"repeated header", func(r *http.Request) { r.Header.Add(identity.HeaderNonce, "another-nonce") }, t0, string(contracts.CodeSchemaValidationError)},
		{"short nonce", func(r *http.Request) { r.Header.Set(identity.HeaderNonce, "short") }, t0, string(contracts.CodeSchemaValidationError)},
		{"non-ascii nonce", func(r *http.Request) { r.Header.Set(identity.HeaderNonce, "nonce-é-12345") }, t0, string(contracts.CodeSchemaValidationError)},
		{"bad alg", func(r *http.Request) { r.Header.Set(identity.HeaderSigAlg, "Ed25519") }, t0, string(contracts.CodeSchemaValidationError)},
		{"bad version", func(r *http.Request) { r.Header.Set(identity.HeaderSigVersion, "v2") }, t0, string(contracts.CodeSchemaValidationError)},
		{"timestamp leading zero", func(r *http.Request) { r.Header.Set(identity.HeaderTimestamp, "01700000000") }, t0, string(contracts.CodeSchemaValidationError)},
		{"timestamp sign", func(r *http.Request) { r.Header.Set(identity.HeaderTimestamp, "+1700000000") }, t0, string(contracts.CodeSchemaValidationError)},
		{"std base64 signature", func(r *http.Request) {
			sig := r.Header.Get(identity.HeaderSignature)
			r.Header.Set(identity.HeaderSignature, strings.NewReplacer("-", "+", "_", "/").Replace(sig)+"==")
		}, t0, string(contracts.CodeSchemaValidationError)},
		{"short signature", func(r *http.Request) { r.Header.Set(identity.HeaderSignature, "AAAA") }, t0, string(contracts.CodeSchemaValidationError)},
		{"too old", func(*http.Request) {}, t0.Add(61 * time.Second), string(contracts.CodeAuthInvalid)},
		{"too new", func(*http.Request) {}, t0.Add(-61 * time.Second), string(contracts.CodeAuthInvalid)},
		{"unknown key id", func(r *http.Request) { r.Header.Set(identity.HeaderKeyID, "did:key:zUnknown") }, t0, string(contracts.CodeAuthInvalid)},
		{"other key's id", func(r *http.Request) { r.Header.Set(identity.HeaderKeyID, other.DID().String()) }, t0, string(contracts.CodeAuthInvalid)},
		{"method changed", func(r *http.Request) { r.Method = http.MethodPut }, t0, string(contracts.CodeAuthInvalid)},
		{"path changed", func(r *http.Request) { r.RequestURI = "/v1/b?x=1" }, t0, string(contracts.CodeAuthInvalid)},
		{"query encoding changed", func(r *http.Request) { r.RequestURI = "/v1/a?x=%31" }, t0, string(contracts.CodeAuthInvalid)},
		{"body changed", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"k":2}`)) }, t0, string(contracts.CodeAuthInvalid)},
		{"body removed", func(r *http.Request) { r.Body = http.NoBody }, t0, string(contracts.CodeAuthInvalid)},
		{"body not JSON", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`k=1`)) }, t0, string(contracts.CodeAuthInvalid)},
		{"body duplicate keys", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"k":1,"k":1}`)) }, t0, string(contracts.CodeAuthInvalid)},
		{"nonce changed", func(r *http.Request) { r.Header.Set(identity.HeaderNonce, "different-nonce") }, t0, string(contracts.CodeAuthInvalid)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := identity.NewMemNonceStore(10)
			r := good()
			tc.mutate(r)
			_, err := newVerifier(t, s.w, tc.now, "op", store).Verify(r)
			if string(contracts.CodeOf(err)) != tc.code {
				t.Fatalf("code %s (%v), want %s", contracts.CodeOf(err), err, tc.code)
			}
			if store.Len() != 0 {
				t.Fatal("a rejected request consumed a nonce")
			}
		})
	}
	// The window is inclusive at ±60 s.
	for _, d := range []time.Duration{60 * time.Second, -60 * time.Second} {
		if _, err := newVerifier(t, s.w, t0.Add(d), "op", identity.NewMemNonceStore(10)).Verify(good()); err != nil {
			t.Errorf("skew %v: %v", d, err)
		}
	}
}

func TestAttestationReplayAfterSignature(t *testing.T) {
	s := newSigned(t, t0)
	store := identity.NewMemNonceStore(10)
	v := newVerifier(t, s.w, t0, "op", store)
	r := s.serverRequest(t, http.MethodGet, "/v1/h", "", "op")
	replay := r.Clone(context.Background())
	if _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(replay); !errors.Is(err, contracts.ErrReplay) {
		t.Fatalf("replay: %v, want REPLAY_DETECTED", err)
	}
	// A forged request reusing a fresh nonce is rejected for its signature
	// and does not burn the nonce for the legitimate sender.
	fresh := s.serverRequest(t, http.MethodGet, "/v1/h", "", "op")
	forged := fresh.Clone(context.Background())
	forged.Header.Set(identity.HeaderSignature, contracts.EncodeBase64URL(make([]byte, 64)))
	if _, err := v.Verify(forged); contracts.CodeOf(err) != contracts.CodeAuthInvalid {
		t.Fatalf("forged: %v", err)
	}
	if _, err := v.Verify(fresh); err != nil {
		t.Fatalf("legitimate request after a forgery: %v", err)
	}
}

// TestAttestationReplayAcrossKeyIDs: the key id is not signed, so a replay
// under another id of the same key is still a replay.
func TestAttestationReplayAcrossKeyIDs(t *testing.T) {
	s := newSigned(t, t0)
	did := s.w.DID().String()
	keys := identity.StaticKeys{did: s.w.PublicKey(), "alias": s.w.PublicKey()}
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return "op", nil },
		Keys:   keys,
		Nonces: identity.NewMemNonceStore(10),
		Now:    func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.serverRequest(t, http.MethodGet, "/x", "", "op")
	replay := r.Clone(context.Background())
	replay.Header.Set(identity.HeaderKeyID, "alias")
	if _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(replay); contracts.CodeOf(err) != contracts.CodeReplayDetected {
		t.Fatalf("replay under an alias: %v", err)
	}
}

type failingStore struct{ calls atomic.Int32 }

func (f *failingStore) Claim(context.Context, string, time.Duration) (bool, error) {
	f.calls.Add(1)
	return true, errors.New("redis: connection refused")
}

func TestAttestationStoreFailureDenies(t *testing.T) {
	s := newSigned(t, t0)
	store := &failingStore{}
	_, err := newVerifier(t, s.w, t0, "op", store).Verify(s.serverRequest(t, http.MethodGet, "/x", "", "op"))
	if err == nil || store.calls.Load() != 1 {
		t.Fatalf("store failure: %v (calls %d), want a denial", err, store.calls.Load())
	}
	var ce *contracts.Error
	if !errors.As(err, &ce) || ce.Code != contracts.CodeInternal || !ce.Retryable {
		t.Fatalf("error %v, want retryable INTERNAL", err)
	}
	// A full memory store denies too.
	full := identity.NewMemNonceStore(1)
	v := newVerifier(t, s.w, t0, "op", full)
	if _, err := v.Verify(s.serverRequest(t, http.MethodGet, "/x", "", "op")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(s.serverRequest(t, http.MethodGet, "/x", "", "op")); !errors.Is(err, identity.ErrNonceStoreFull) {
		t.Fatalf("full store: %v, want ErrNonceStoreFull", err)
	}
}

func TestAttestationOpcodeAndKeyErrors(t *testing.T) {
	s := newSigned(t, t0)
	mk := func(opcode func(*http.Request) (string, error), keys identity.KeyResolver) *identity.AttestationVerifier {
		v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
			Opcode: opcode, Keys: keys, Nonces: identity.NewMemNonceStore(10), Now: func() time.Time { return t0 },
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	noRoute := func(*http.Request) (string, error) { return "", errors.New("no route") }
	notFound := func(*http.Request) (string, error) { return "", contracts.New(contracts.CodeNotFound, "no route") }
	fixed := func(*http.Request) (string, error) { return "op", nil }
	empty := func(*http.Request) (string, error) { return "", nil }
	down := identity.KeyResolverFunc(func(context.Context, string) (ed25519.PublicKey, error) {
		return nil, contracts.New(contracts.CodeTransportError, "did:web down")
	})
	for _, tc := range []struct {
		v    *identity.AttestationVerifier
		code string
	}{
		{mk(noRoute, identity.DIDKeys(nil)), string(contracts.CodeAuthInvalid)},
		{mk(notFound, identity.DIDKeys(nil)), string(contracts.CodeNotFound)},
		{mk(fixed, down), string(contracts.CodeTransportError)},
		{mk(empty, identity.DIDKeys(nil)), string(contracts.CodeAuthInvalid)},
	} {
		if _, err := tc.v.Verify(s.serverRequest(t, http.MethodGet, "/x", "", "op")); string(contracts.CodeOf(err)) != tc.code {
			t.Errorf("code %s (%v), want %s", contracts.CodeOf(err), err, tc.code)
		}
	}
}

func TestAttestationBodyLimit(t *testing.T) {
	s := newSigned(t, t0)
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode:      func(*http.Request) (string, error) { return "op", nil },
		Keys:        identity.DIDKeys(nil),
		Nonces:      identity.NewMemNonceStore(10),
		Now:         func() time.Time { return t0 },
		MaxBodySize: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.serverRequest(t, http.MethodPost, "/x", `{"k":"0123456789abcdef"}`, "op")
	if _, err := v.Verify(r); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("oversized body: %v", err)
	}
}

func TestAttestationConfigRequired(t *testing.T) {
	op := func(*http.Request) (string, error) { return "op", nil }
	for _, cfg := range []identity.AttestationVerifierConfig{
		{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1)},
		{Opcode: op, Nonces: identity.NewMemNonceStore(1)},
		{Opcode: op, Keys: identity.DIDKeys(nil)},
		{Opcode: op, Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1), Window: time.Minute, NonceTTL: time.Minute},
	} {
		if _, err := identity.NewAttestationVerifier(cfg); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("config %+v accepted: %v", cfg, err)
		}
	}
	if _, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{}); err == nil {
		t.Error("signer without Signer accepted")
	}
	w := mustWallet(t, seedN(1))
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{
		Signer: w.Signer(), Nonce: func() (string, error) { return " padded-nonce ", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://x.example/", nil)
	if err := s.Sign(req, "op"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("nonce with outer spaces: %v", err)
	}
	if err := s.Sign(req, ""); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("empty opcode: %v", err)
	}
	bad, _ := http.NewRequest(http.MethodPost, "https://x.example/", strings.NewReader("not json"))
	if err := s.Sign(bad, "op"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("non-JSON body: %v", err)
	}
}

// TestAttestationOverHTTP signs with a real client, verifies in middleware
// on a real server, and checks the next handler sees the body and the
// attestation, and that a replay gets 409 with the contract error object.
func TestAttestationOverHTTP(t *testing.T) {
	w := mustWallet(t, seedN(13))
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(r *http.Request) (string, error) {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
				return "llm.chat.completions", nil
			}
			return "", contracts.New(contracts.CodeNotFound, "no such route")
		},
		Keys:   identity.DIDKeys(nil),
		Nonces: identity.NewMemNonceStore(100),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		a, ok := identity.AttestationFromContext(r.Context())
		body, _ := io.ReadAll(r.Body)
		if !ok {
			http.Error(rw, "no attestation", 500)
			return
		}
		rw.Write([]byte(a.DID.String() + " " + string(body)))
	})))
	defer srv.Close()
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"m","messages":[]}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions?version=2023-01-01&a=%2F", strings.NewReader(body))
	if err := signer.Sign(req, "llm.chat.completions"); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != w.DID().String()+" "+body {
		t.Fatalf("status %d body %q", resp.StatusCode, got)
	}
	// Replay the exact same request (GetBody lets the client resend it).
	req2, _ := http.NewRequest(http.MethodPost, req.URL.String(), bytes.NewReader([]byte(body)))
	req2.Header = req.Header.Clone()
	resp, err = srv.Client().Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	var e contracts.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || e.Code != contracts.CodeReplayDetected {
		t.Fatalf("replay: status %d error %+v", resp.StatusCode, e)
	}
}

func TestParseAttestationHeadersSetRoundTrip(t *testing.T) {
	s := newSigned(t, t0)
	r := s.serverRequest(t, http.MethodGet, "/x", "", "op")
	h, err := identity.ParseAttestationHeaders(r.Header)
	if err != nil {
		t.Fatal(err)
	}
	out := http.Header{}
	h.Set(out)
	for _, name := range []string{identity.HeaderKeyID, identity.HeaderTimestamp, identity.HeaderNonce,
		identity.HeaderSignature, identity.HeaderSigAlg, identity.HeaderSigVersion} {
		if out.Get(name) != r.Header.Get(name) {
			t.Errorf("%s: %q, want %q", name, out.Get(name), r.Header.Get(name))
		}
	}
}

// TestAttestationEmptyOpcodeDenied: a route without an opcode is denied
// even for a request whose signature covers the empty opcode.
func TestAttestationEmptyOpcodeDenied(t *testing.T) {
	w := mustWallet(t, seedN(14))
	input := identity.AttestationSigningInput(nil, "GET", "/x", "nonce-empty-op", "1700000000", "")
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	identity.AttestationHeaders{KeyID: w.DID().String(), Timestamp: 1700000000, Nonce: "nonce-empty-op", Signature: w.Sign(input)}.Set(r.Header)
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return "", nil },
		Keys:   identity.DIDKeys(nil),
		Nonces: identity.NewMemNonceStore(1),
		Now:    func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(r); contracts.CodeOf(err) != contracts.CodeAuthInvalid {
		t.Fatalf("empty opcode: %v, want AUTH_INVALID", err)
	}
}
