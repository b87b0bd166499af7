package identity_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Issue 10 item 5: one principal filling the in-memory nonce store with
// validly signed requests must not deny anyone else. The flooder is
// limited (RATE_LIMITED, retryable); the other principal still verifies.
func TestAttestationNonceFloodIsolated(t *testing.T) {
	flooder := newSigned(t, t0)
	victimW := mustWallet(t, seedN(13))
	victim, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: victimW.Signer(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	// 64 keys in all, 4 per principal, so no principal can hold more than
	// 1/16 of the store; the rate limit is out of the way here.
	store, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 64, MaxPerPrincipal: 4, Rate: 1e9, Burst: 1 << 30,
		Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, flooder.w, t0, "op", store)
	accepted, limited := 0, 0
	for range 1000 {
		_, err := v.Verify(flooder.serverRequest(t, http.MethodPost, "/x", `{"k":1}`, "op"))
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, identity.ErrNonceRateLimited):
			var ce *contracts.Error
			if !errors.As(err, &ce) || ce.Code != contracts.CodeRateLimited || !ce.Retryable {
				t.Fatalf("flooder error %v, want retryable RATE_LIMITED", err)
			}
			limited++
		default:
			t.Fatalf("flooder: unexpected error %v", err)
		}
	}
	if accepted != 4 || limited != 996 {
		t.Fatalf("flooder: %d accepted, %d limited; want 4 and 996", accepted, limited)
	}
	if store.Len() != 4 {
		t.Fatalf("store holds %d keys after the flood, want 4", store.Len())
	}
	// Everyone else is unaffected.
	r := httpRequest(t, victim, "/x", `{"k":2}`)
	a, err := v.Verify(r)
	if err != nil {
		t.Fatalf("victim denied after the flood: %v", err)
	}
	if a.DID != victimW.DID() {
		t.Fatalf("verified %s, want the victim", a.DID)
	}
}

// httpRequest signs a server-side POST request with s.
func httpRequest(t *testing.T, s *identity.AttestationSigner, target, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://h"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(req, "op"); err != nil {
		t.Fatal(err)
	}
	srv, err := http.NewRequest(http.MethodPost, "http://h"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	srv.RequestURI = target
	srv.Header = req.Header.Clone()
	return srv
}

// Issue 10 item 6: an unknown key id and a bad signature give the client
// the same error text and code; the server can still tell them apart.
func TestAttestationNoRegistrationOracle(t *testing.T) {
	s := newSigned(t, t0)
	other := mustWallet(t, seedN(12))
	keys := identity.StaticKeys{"registered": s.w.PublicKey()}
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return "op", nil }, Keys: keys,
		Nonces: identity.NewMemNonceStore(10), Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: other.Signer(), KeyID: "registered", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	badSig := httpRequest(t, otherSigner, "/x", `{"k":1}`) // registered id, wrong key
	unknownSigner, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: other.Signer(), KeyID: "not-registered", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	unknown := httpRequest(t, unknownSigner, "/x", `{"k":1}`)
	_, errBad := v.Verify(badSig)
	_, errUnknown := v.Verify(unknown)
	if errBad == nil || errUnknown == nil {
		t.Fatalf("accepted: %v / %v", errBad, errUnknown)
	}
	if errBad.Error() != errUnknown.Error() || contracts.CodeOf(errBad) != contracts.CodeAuthInvalid || contracts.CodeOf(errUnknown) != contracts.CodeAuthInvalid {
		t.Fatalf("distinguishable errors:\n%v\n%v", errBad, errUnknown)
	}
	var cb, cu *contracts.Error
	if !errors.As(errBad, &cb) || !errors.As(errUnknown, &cu) || cb.Message != cu.Message || cb.Retryable != cu.Retryable {
		t.Fatalf("client-visible fields differ: %+v / %+v", cb, cu)
	}
	if !errors.Is(errBad, identity.ErrBadSignature) || errors.Is(errBad, identity.ErrUnknownKeyID) {
		t.Fatalf("bad signature reason lost: %v", errBad)
	}
	if !errors.Is(errUnknown, identity.ErrUnknownKeyID) || errors.Is(errUnknown, identity.ErrBadSignature) {
		t.Fatalf("unknown key reason lost: %v", errUnknown)
	}
	// The same through the HTTP middleware: identical bodies and status.
	var bodies [2]string
	var codes [2]int
	for i, r := range []*http.Request{httpRequest(t, otherSigner, "/y", `{}`), httpRequest(t, unknownSigner, "/y", `{}`)} {
		w := httptest.NewRecorder()
		v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Fatal("reached the handler") })).ServeHTTP(w, r)
		bodies[i], codes[i] = w.Body.String(), w.Code
	}
	if bodies[0] != bodies[1] || codes[0] != codes[1] || codes[0] != http.StatusUnauthorized {
		t.Fatalf("responses differ: %d %s / %d %s", codes[0], bodies[0], codes[1], bodies[1])
	}
}
