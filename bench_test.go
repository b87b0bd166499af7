package talos_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// BenchmarkMiddleware measures one attested, authorized request through
// the middleware with a warm capability cache ("talos"), beside one bare
// ed25519.Verify ("ed25519_verify") in the same run. Requests are signed
// outside the timed region.
func BenchmarkMiddleware(b *testing.B) {
	b.Run("talos", func(b *testing.B) {
		root, agent := wallet(b, 1), wallet(b, 2)
		routes, err := talos.NewRouteTable([]talos.Route{{Pattern: "POST /v1/fs/read", Tool: "fs", Action: "read"}})
		if err != nil {
			b.Fatal(err)
		}
		att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
			Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemoryNonceStore(1 << 20)}})
		if err != nil {
			b.Fatal(err)
		}
		v, _ := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
		b.Cleanup(func() { v.Close() })
		mw, _ := talos.NewMiddleware(talos.MiddlewareConfig{Attester: att, Authorizer: v})
		h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		tok, _ := capability.Issue(root, agent.DID().String(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), capability.IssueOptions{})
		enc := tok.Encode()
		s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
		body := []byte(`{"path":"/data"}`)
		batch := make([]*http.Request, 256)
		sign := func() {
			for i := range batch {
				r := httptest.NewRequest("POST", "/v1/fs/read", bytes.NewReader(body))
				r.Header.Set(talos.HeaderCapability, enc)
				if err := s.Sign(r, "fs.read"); err != nil {
					b.Fatal(err)
				}
				batch[i] = r
			}
		}
		b.ReportAllocs()
		w := httptest.NewRecorder()
		i := len(batch)
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			if i == len(batch) {
				b.StopTimer()
				sign()
				i = 0
				b.StartTimer()
			}
			w.Code = 0
			h.ServeHTTP(w, batch[i])
			i++
		}
		if w.Code != 0 && w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	})
	b.Run("ed25519_verify", func(b *testing.B) {
		w := wallet(b, 1)
		msg := make([]byte, 120)
		sig := w.Sign(msg)
		pub := w.PublicKey()
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify")
			}
		}
	})
}
