package identity_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/talosgo/talos/contracts"

	"github.com/talosgo/talos/identity"
)

// TestAttestingTransport sends attested requests through the transport to a
// server whose verifier accepts only the signer's key, and checks that
// bodies arrive intact, extra headers are added, and a replayed request is
// refused.
func TestAttestingTransport(t *testing.T) {
	w, err := identity.GenerateWallet("agent")
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return "test.echo", nil },
		Keys:   identity.StaticKeys{w.DID().String(): w.PublicKey()},
		Nonces: identity.NewMemNonceStore(100),
	})
	if err != nil {
		t.Fatal(err)
	}
	var last *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		att, err := v.Verify(r)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		last = r.Clone(context.Background())
		body, _ := io.ReadAll(r.Body)
		rw.Header().Set("X-Key", att.DID.String())
		rw.Header().Set("X-Extra", r.Header.Get("X-Extra"))
		rw.Write(body)
	}))
	defer srv.Close()

	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &identity.AttestingTransport{
		Signer: s, Routes: identity.OpcodeFunc(func(*http.Request) (string, error) { return "test.echo", nil }),
		Header: http.Header{"X-Extra": {"yes"}},
	}}
	body := `{"b":1, "a":"x"}`
	resp, err := client.Post(srv.URL+"/echo?q=1", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != body || resp.Header.Get("X-Key") != w.DID().String() || resp.Header.Get("X-Extra") != "yes" {
		t.Fatalf("status %d body %q key %q extra %q", resp.StatusCode, got, resp.Header.Get("X-Key"), resp.Header.Get("X-Extra"))
	}

	// Replaying the exact signed request is refused.
	replay, err := http.NewRequest(http.MethodPost, srv.URL+"/echo?q=1", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	replay.Header = last.Header.Clone()
	resp, err = http.DefaultClient.Do(replay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed request: status %d, want 401", resp.StatusCode)
	}
}

// TestAttestingTransportRoutes: the opcode comes from the route source;
// a request with no route fails before anything is sent, unless
// SendUnrouted sends it unattested; bodies that cannot be attested fail
// before sending, each with its own message.
func TestAttestingTransportRoutes(t *testing.T) {
	w, err := identity.GenerateWallet("agent")
	if err != nil {
		t.Fatal(err)
	}
	routes := identity.OpcodeFunc(func(r *http.Request) (string, error) {
		if r.URL.Path == "/tools/run" {
			return "tools.run", nil
		}
		return "", contracts.New(contracts.CodeNotFound, "no route")
	})
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: routes.Opcode, Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(100),
	})
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get(identity.HeaderSignature) == "" {
			rw.Write([]byte("unattested"))
			return
		}
		if _, err := v.Verify(r); err != nil {
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		rw.Write([]byte("attested"))
	}))
	defer srv.Close()
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	tr := &identity.AttestingTransport{Signer: s, Routes: routes}
	client := &http.Client{Transport: tr}
	get := func(method, path, body string) (string, error) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if got, err := get("POST", "/tools/run", `{"a":[1,{"b":2}]}`); err != nil || got != "attested" {
		t.Fatalf("routed: %q %v", got, err)
	}
	n := hits.Load()
	if _, err := get("GET", "/health", ""); !errors.Is(err, contracts.ErrNotFound) || hits.Load() != n {
		t.Fatalf("unrouted without SendUnrouted: %v (sent: %v)", err, hits.Load() != n)
	}
	for _, tc := range []struct{ body, msg string }{
		{`hello`, "must be JSON or empty"},
		{`{"a":1,"b":{"c":1,"c":2}}`, `repeats the key "c"`},
		{`{"a":[{"x":1},{"x":1,"x":1}]}`, `repeats the key "x"`},
		{`{"n":9007199254740993}`, "no canonical JSON form"},
	} {
		_, err := get("POST", "/tools/run", tc.body)
		if !errors.Is(err, contracts.ErrInvalidInput) || !strings.Contains(err.Error(), tc.msg) || hits.Load() != n {
			t.Errorf("body %s: %v (sent: %v), want %q", tc.body, err, hits.Load() != n, tc.msg)
		}
	}
	// Keys repeated in different objects are fine.
	if got, err := get("POST", "/tools/run", `{"x":{"x":1},"y":[{"x":2},{"x":3}]}`); err != nil || got != "attested" {
		t.Fatalf("distinct objects: %q %v", got, err)
	}
	tr.SendUnrouted = true
	if got, err := get("GET", "/health", ""); err != nil || got != "unattested" {
		t.Fatalf("unrouted with SendUnrouted: %q %v", got, err)
	}
	if _, err := (&http.Client{Transport: &identity.AttestingTransport{Signer: s}}).Get(srv.URL + "/tools/run"); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("no Routes: %v", err)
	}
}

// FuzzCheckAttestedBody: CheckAttestedBody accepts exactly the bodies the
// signer can sign, never panics, and reports a duplicate key only for
// bodies canonical JSON refuses.
func FuzzCheckAttestedBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `[]`, `1`, `"x"`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `[{"a":1},{"a":1}]`, `{"a":1e400}`, `nul`, `{"\u0061":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := identity.CheckAttestedBody(body)
		_, cerr := contracts.Canonicalize(body)
		if len(body) > 0 && (err == nil) != (cerr == nil) {
			t.Fatalf("%q: CheckAttestedBody %v, Canonicalize %v", body, err, cerr)
		}
		if err != nil && !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("%q: untyped error %v", body, err)
		}
	})
}
