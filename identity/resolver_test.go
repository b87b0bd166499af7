package identity_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

func TestDIDKeyResolver(t *testing.T) {
	w := mustWallet(t, seedN(1))
	doc, err := identity.DIDKeyResolver{}.Resolve(context.Background(), didSeed1)
	if err != nil {
		t.Fatal(err)
	}
	if doc.ID != didSeed1 || len(doc.VerificationMethods) != 1 {
		t.Fatalf("doc %+v", doc)
	}
	vm := doc.VerificationMethods[0]
	if vm.ID != didSeed1+"#z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG" || vm.Controller != didSeed1 || !vm.PublicKey.Equal(w.PublicKey()) {
		t.Fatalf("method %+v", vm)
	}
	k, err := doc.AuthenticationKey()
	if err != nil || !k.Equal(w.PublicKey()) {
		t.Fatalf("AuthenticationKey: %v", err)
	}
	if _, err := (identity.DIDKeyResolver{}).Resolve(context.Background(), "did:web:example.com"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("did:web through DIDKeyResolver: %v", err)
	}
	keys := identity.DIDKeys(nil)
	for _, id := range []string{didSeed1, vm.ID} {
		k, err := keys.ResolveKey(context.Background(), id)
		if err != nil || !k.Equal(w.PublicKey()) {
			t.Fatalf("ResolveKey(%s): %v", id, err)
		}
	}
	if _, err := keys.ResolveKey(context.Background(), didSeed1+"#other"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("unknown fragment: %v", err)
	}
}

// webDID returns the did:web of a path on an httptest TLS server.
func webDID(srv *httptest.Server, path ...string) string {
	u, _ := url.Parse(srv.URL)
	host := strings.Replace(u.Host, ":", "%3A", 1)
	return strings.Join(append([]string{"did:web:" + host}, path...), ":")
}

func TestWebResolver(t *testing.T) {
	w := mustWallet(t, seedN(21))
	w2 := mustWallet(t, seedN(22))
	var hits atomic.Int32
	var mu sync.Mutex
	docs := map[string]string{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		d, ok := docs[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/redirect/did.json":
			http.Redirect(rw, r, "/.well-known/did.json", http.StatusFound)
		case r.URL.Path == "/big/did.json":
			rw.Write([]byte(`{"id":"x","pad":"` + strings.Repeat("a", 100<<10) + `"}`))
		case r.URL.Path == "/slow/did.json":
			time.Sleep(300 * time.Millisecond)
		case !ok:
			http.NotFound(rw, r)
		default:
			rw.Write([]byte(d))
		}
	}))
	defer srv.Close()
	root := webDID(srv)
	alice := webDID(srv, "users", "alice")
	jwkX := contracts.EncodeBase64URL(w2.PublicKey())
	docs["/.well-known/did.json"] = fmt.Sprintf(`{
		"@context": ["https://www.w3.org/ns/did/v1"],
		"id": %q,
		"verificationMethod": [
			{"id": "#key-1", "type": "Ed25519VerificationKey2020", "controller": %q, "publicKeyMultibase": %q},
			{"id": "#p256", "type": "JsonWebKey2020", "controller": %q, "publicKeyJwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}
		],
		"authentication": ["#key-1"],
		"assertionMethod": ["#key-1", {"id": %q, "type": "JsonWebKey2020", "controller": %q, "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": %q}}]
	}`, root, root, w.DID().String()[len("did:key:"):], root, root+"#jwk", root, jwkX)
	docs["/users/alice/did.json"] = fmt.Sprintf(`{"id": %q, "verificationMethod": [{"id": %q, "type": "Multikey", "controller": %q, "publicKeyMultibase": %q}], "authentication": [%q]}`,
		alice, alice+"#k", alice, w2.DID().String()[len("did:key:"):], alice+"#k")

	now := time.Unix(1000, 0)
	var clockMu sync.Mutex
	r := identity.NewWebResolver(identity.WebResolverConfig{
		Client:          srv.Client(),
		Timeout:         100 * time.Millisecond,
		MaxDocumentSize: 4 << 10,
		CacheTTL:        time.Minute,
		Now: func() time.Time {
			clockMu.Lock()
			defer clockMu.Unlock()
			return now
		},
	})
	ctx := context.Background()
	doc, err := r.Resolve(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.VerificationMethods) != 2 || doc.Authentication[0] != root+"#key-1" {
		t.Fatalf("doc %+v", doc)
	}
	if k, err := doc.AuthenticationKey(); err != nil || !k.Equal(w.PublicKey()) {
		t.Fatalf("AuthenticationKey: %v", err)
	}
	if m, ok := doc.Method(root + "#jwk"); !ok || !m.PublicKey.Equal(w2.PublicKey()) {
		t.Fatalf("embedded JWK method: %+v", m)
	}
	// Cached: a second resolution does not hit the server, and mutating a
	// returned document does not affect the cache.
	doc.VerificationMethods[0].PublicKey[0] ^= 0xff
	before := hits.Load()
	doc2, err := r.Resolve(ctx, root)
	if err != nil || hits.Load() != before {
		t.Fatalf("cache miss: %v (hits %d -> %d)", err, before, hits.Load())
	}
	if k, _ := doc2.AuthenticationKey(); !k.Equal(w.PublicKey()) {
		t.Fatal("cached document was mutated through a returned copy")
	}
	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	if _, err := r.Resolve(ctx, root); err != nil || hits.Load() != before+1 {
		t.Fatalf("expired entry not refetched: %v", err)
	}

	// Path-based DID and the multi resolver + key resolver.
	multi := identity.NewMultiResolver(map[string]identity.Resolver{"web": r})
	keys := identity.DIDKeys(multi)
	for id, want := range map[string]*identity.Wallet{alice: w2, alice + "#k": w2, root: w, didSeed1: mustWallet(t, seedN(1))} {
		k, err := keys.ResolveKey(ctx, id)
		if err != nil || !k.Equal(want.PublicKey()) {
			t.Errorf("ResolveKey(%s): %v", id, err)
		}
	}
	// An assertion-only key is not an authentication key.
	if _, err := keys.ResolveKey(ctx, root+"#jwk"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("assertion-only key: %v", err)
	}
	if _, err := multi.Resolve(ctx, "did:example:123"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("unsupported method: %v", err)
	}

	for name, tc := range map[string]struct {
		did  string
		code string
	}{
		"not found": {webDID(srv, "nobody"), string(contracts.CodeNotFound)},
		"redirect":  {webDID(srv, "redirect"), string(contracts.CodeTransportError)},
		"too large": {webDID(srv, "big"), string(contracts.CodeInvalidInput)},
		"timeout":   {webDID(srv, "slow"), string(contracts.CodeTransportTimeout)},
	} {
		if _, err := r.Resolve(ctx, tc.did); string(contracts.CodeOf(err)) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}

	// A plain-HTTP server cannot be used: the URL is always https.
	plain := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	if _, err := identity.NewWebResolver(identity.WebResolverConfig{Client: plain.Client(), Timeout: time.Second}).Resolve(ctx, webDID(plain)); contracts.CodeOf(err) != contracts.CodeTransportError {
		t.Errorf("plain HTTP: %v", err)
	}
}

func TestParseDocumentRejects(t *testing.T) {
	w := mustWallet(t, seedN(1))
	did := "did:web:example.com"
	mb := w.DID().String()[len("did:key:"):]
	for name, doc := range map[string]string{
		"id mismatch":   `{"id":"did:web:other.com"}`,
		"duplicate key": `{"id":"did:web:example.com","id":"did:web:example.com"}`,
		"private jwk":   `{"id":"did:web:example.com","verificationMethod":[{"id":"#k","type":"JsonWebKey2020","publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"` + contracts.EncodeBase64URL(w.PublicKey()) + `","d":"AAAA"}}]}`,
		"foreign id":    `{"id":"did:web:example.com","verificationMethod":[{"id":"did:web:evil.com#k","type":"Multikey","publicKeyMultibase":"` + mb + `"}]}`,
		"duplicate ids": `{"id":"did:web:example.com","verificationMethod":[{"id":"#k","type":"Multikey","publicKeyMultibase":"` + mb + `"},{"id":"#k","type":"Multikey","publicKeyMultibase":"` + mb + `"}]}`,
		"bad jwk x":     `{"id":"did:web:example.com","verificationMethod":[{"id":"#k","type":"JsonWebKey2020","publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"}}]}`,
		"not an object": `[]`,
		"bad relation":  `{"id":"did:web:example.com","authentication":[42]}`,
		"truncated":     `{"id":"did:web:exa`,
	} {
		if _, err := identity.ParseDocument(did, []byte(doc)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: %v, want TALOS_INVALID_INPUT", name, err)
		}
	}
}

func TestDIDWebURL(t *testing.T) {
	for did, want := range map[string]string{
		"did:web:w3c-ccg.github.io":             "https://w3c-ccg.github.io/.well-known/did.json",
		"did:web:w3c-ccg.github.io:user:alice":  "https://w3c-ccg.github.io/user/alice/did.json",
		"did:web:example.com%3A3000:user:alice": "https://example.com:3000/user/alice/did.json",
		"did:web:Example.COM":                   "https://example.com/.well-known/did.json",
	} {
		got, err := identity.DIDWebURL(did)
		if err != nil || got != want {
			t.Errorf("DIDWebURL(%s) = %s, %v; want %s", did, got, err, want)
		}
	}
	for _, did := range []string{
		"did:web:", "did:key:z6Mk", "did:web:example.com:..:secret", "did:web:example.com:a%2Fb",
		"did:web:exa mple.com", "did:web:example.com%3A0", "did:web:example.com%3A99999", "did:web:example.com:",
		"did:web:example.com#frag", "did:web:example.com/path", "did:web:user@example.com", "did:web:-bad.com",
		"did:web:" + strings.Repeat("a", 600),
	} {
		if _, err := identity.DIDWebURL(did); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("DIDWebURL(%q) accepted: %v", did, err)
		}
	}
}
