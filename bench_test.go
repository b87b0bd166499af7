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

// benchHandler is an attested, capability-protected route with a warm
// capability cache, and a function that signs n fresh requests for it.
func benchHandler(b *testing.B) (http.Handler, func(n int) []*http.Request) {
	root, agent := wallet(b, 1), wallet(b, 2)
	routes := mustRoutes(b, talos.Route{Pattern: "POST /v1/fs/read", Tool: "fs", Action: "read"})
	// One principal sends every request: lift its nonce quota and rate.
	nonces, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 1 << 22, MaxPerPrincipal: 1 << 22, Rate: 1e9, Burst: 1 << 22})
	if err != nil {
		b.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: nonces}})
	if err != nil {
		b.Fatal(err)
	}
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{Attester: att, Authorizer: newVerifier(b, root)})
	if err != nil {
		b.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	enc := issue(b, root, agent, capability.Grant{Tool: "fs", Actions: []string{"read"}}).Encode()
	s := signerFor(b, agent)
	body := []byte(`{"path":"/data"}`)
	return h, func(n int) []*http.Request {
		batch := make([]*http.Request, n)
		for i := range batch {
			r := httptest.NewRequest("POST", "/v1/fs/read", bytes.NewReader(body))
			r.Header.Set(talos.HeaderCapability, enc)
			if err := s.Sign(r, "fs.read"); err != nil {
				b.Fatal(err)
			}
			batch[i] = r
		}
		return batch
	}
}

// BenchmarkMiddleware measures one attested, authorized request through
// the middleware with a warm capability cache ("talos"), beside one bare
// ed25519.Verify ("ed25519_verify") in the same run. Requests are signed
// outside the timed region.
func BenchmarkMiddleware(b *testing.B) {
	b.Run("talos", func(b *testing.B) {
		h, sign := benchHandler(b)
		b.ReportAllocs()
		w := httptest.NewRecorder()
		var batch []*http.Request
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			if len(batch) == 0 {
				b.StopTimer()
				batch = sign(256)
				b.StartTimer()
			}
			h.ServeHTTP(w, batch[0])
			batch = batch[1:]
		}
		if w.Code != 200 {
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

// BenchmarkMiddlewareRatio interleaves one attested, authorized request
// through the middleware (warm capability cache) with one bare
// ed25519.Verify and reports their time ratio ("x-verify"), which load on
// the machine inflates alike. The request's own cost is one Verify plus
// canonicalizing the body, the nonce claim, routing and the warm
// authorization.
func BenchmarkMiddlewareRatio(b *testing.B) {
	h, sign := benchHandler(b)
	w := wallet(b, 1)
	msg := make([]byte, 120)
	sig := w.Sign(msg)
	pub := w.PublicKey()
	rec := httptest.NewRecorder()
	var tm, tv time.Duration
	var batch []*http.Request
	b.ReportAllocs()
	for b.Loop() {
		if len(batch) == 0 {
			batch = sign(256)
		}
		t0 := time.Now()
		h.ServeHTTP(rec, batch[0])
		t1 := time.Now()
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
		tv += time.Since(t1)
		tm += t1.Sub(t0)
		batch = batch[1:]
	}
	if rec.Code != 200 {
		b.Fatal(rec.Code, rec.Body)
	}
	b.ReportMetric(float64(tm)/float64(tv), "x-verify")
}
