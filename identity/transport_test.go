package identity_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

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
		Nonces: identity.NewMemoryNonceStore(100),
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
		Signer: s, Opcode: func(*http.Request) string { return "test.echo" },
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
