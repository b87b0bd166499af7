package kernelapi_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/gateway/kernelapi"
	"github.com/talosgo/talos/identity"
)

// BenchmarkAuthorize serves one attested POST /v1/authorize in process:
// attestation check, registry look-up, strict body, Kernel decision (the
// capability verifier and RBAC policy), rate limit and one audit append.
// Requests are signed before the timer; Ed25519Verify is one signature
// check in the same run, the floor of an attested request.
func BenchmarkAuthorize(b *testing.B) {
	ctx := b.Context()
	g, err := newGateway(ctx, b.TempDir(), budget.Limit{Rate: 1_000_000, Period: time.Second, Burst: 10_000_000})
	if err != nil {
		b.Fatal(err)
	}
	// agent registers a principal with a capability and returns its
	// signer and a request body. The nonce quota is per principal, so a
	// long run spreads its requests over several.
	agent := func(b *testing.B) (*identity.AttestationSigner, []byte) {
		w, _ := identity.GenerateWallet("alice")
		if st := g.adminCall(b, "PUT", "/v1/principals/"+w.DID().String(), `{"team_id":"team-a"}`, nil); st != 200 {
			b.Fatal(st)
		}
		var tok struct{ Token string }
		body := `{"subject":"` + w.DID().String() + `","grants":[{"tool":"files","actions":["read"]}],"expires_in_seconds":600}`
		if st := g.adminCall(b, "POST", "/v1/capabilities", body, &tok); st != http.StatusCreated {
			b.Fatal(st)
		}
		signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
		if err != nil {
			b.Fatal(err)
		}
		// Canonical (sorted keys), as the SDKs and json.Marshal of a map send it.
		return signer, []byte(`{"action":"read","capability":"` + tok.Token + `","tool":"files"}`)
	}
	const perAgent = 5000

	b.Run("Authorize", func(b *testing.B) {
		reqs := make([]*http.Request, b.N)
		var signer *identity.AttestationSigner
		var raw []byte
		for i := range reqs {
			if i%perAgent == 0 {
				signer, raw = agent(b)
			}
			r := httptest.NewRequest("POST", "/v1/authorize", bytes.NewReader(raw))
			r.Header.Set("Content-Type", "application/json")
			if err := signer.Sign(r, kernelapi.Opcode); err != nil {
				b.Fatal(err)
			}
			reqs[i] = r
		}
		b.ReportAllocs()
		b.ResetTimer()
		for _, r := range reqs {
			w := httptest.NewRecorder()
			g.mux.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("%d %s", w.Code, w.Body.Bytes())
			}
		}
	})
	b.Run("Ed25519Verify", func(b *testing.B) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		raw := []byte(`{"action":"read","capability":"a 330-byte token","tool":"files"}`)
		sig := ed25519.Sign(priv, raw)
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, raw, sig) {
				b.Fatal("verify")
			}
		}
	})
}
