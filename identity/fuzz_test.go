package identity_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// FuzzParseDID: ParseDID never panics; an accepted string is the canonical
// encoding (String() == input) and re-parses to the same DID; a rejection is
// a *contracts.Error matching ErrInvalidDID.
func FuzzParseDID(f *testing.F) {
	for _, s := range []string{
		didSeed1,
		"did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc",
		"did:key:z1" + didSeed1[len("did:key:z"):],
		"did:key:z",
		"did:web:example.com",
		didSeed1 + "#frag",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := identity.ParseDID(s)
		if err != nil {
			if !errors.Is(err, identity.ErrInvalidDID) || contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v is not an ErrInvalidDID", err)
			}
			if !d.IsZero() {
				t.Fatal("non-zero DID with an error")
			}
			return
		}
		if d.String() != s {
			t.Fatalf("accepted non-canonical %q (canonical %q)", s, d.String())
		}
		again, err := identity.ParseDID(d.String())
		if err != nil || again != d {
			t.Fatalf("re-parse: %v", err)
		}
		if len(d.PublicKey()) != 32 {
			t.Fatal("accepted DID without a 32-byte key")
		}
	})
}

func TestFuzzAttestationSeedAccepted(t *testing.T) {
	h := http.Header{}
	identity.AttestationHeaders{KeyID: didSeed1, Timestamp: 1700000000, Nonce: "test-nonce-123", Signature: make([]byte, 64)}.Set(h)
	if _, err := identity.ParseAttestationHeaders(h); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseAttestationHeaders: the header parser never panics on any
// header values; an accepted set is canonical (Set writes back exactly the
// same six values), and its fields respect the schema bounds.
func FuzzParseAttestationHeaders(f *testing.F) {
	f.Add(didSeed1, "1700000000", "test-nonce-123", "KM7ncFpV_LEMnyym8W5loCh9JSUPqbJl7RxR6WV46v5iF9dNlCxxay5OJ-xLgYXnktOdcflpxKQ0xynu3PqxAg", "ed25519", "v1")
	f.Add("k", "0", "        ", "KM7ncFpV_LEMnyym8W5loCh9JSUPqbJl7RxR6WV46v5iF9dNlCxxay5OJ-xLgYXnktOdcflpxKQ0xynu3PqxAg==", "ed25519", "v1")
	f.Add("", "-1", "n", "", "", "")
	f.Fuzz(func(t *testing.T, keyID, ts, nonce, sig, alg, ver string) {
		h := http.Header{}
		h.Set(identity.HeaderKeyID, keyID)
		h.Set(identity.HeaderTimestamp, ts)
		h.Set(identity.HeaderNonce, nonce)
		h.Set(identity.HeaderSignature, sig)
		h.Set(identity.HeaderSigAlg, alg)
		h.Set(identity.HeaderSigVersion, ver)
		a, err := identity.ParseAttestationHeaders(h)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeSchemaValidationError {
				t.Fatalf("error %v has code %s", err, contracts.CodeOf(err))
			}
			return
		}
		if len(a.KeyID) == 0 || len(a.KeyID) > 255 || len(a.Nonce) < 8 || len(a.Nonce) > 128 || len(a.Signature) != 64 || a.Timestamp < 0 {
			t.Fatalf("accepted out-of-bounds headers %+v", a)
		}
		out := http.Header{}
		a.Set(out)
		for name, want := range map[string]string{
			identity.HeaderKeyID: keyID, identity.HeaderTimestamp: ts, identity.HeaderNonce: nonce,
			identity.HeaderSignature: sig, identity.HeaderSigAlg: alg, identity.HeaderSigVersion: ver,
		} {
			if got := out.Get(name); got != want {
				t.Fatalf("%s: accepted %q but re-encodes as %q", name, want, got)
			}
		}
	})
}

// FuzzParseWalletText: never panics; accepted text re-encodes to itself.
func FuzzParseWalletText(f *testing.F) {
	w, _ := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	text, _ := w.MarshalPrivateText()
	f.Add(text)
	f.Add([]byte("talos-wallet-seed:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := identity.ParseWalletText(b)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v", err)
			}
			if len(b) > 40 && strings.Contains(err.Error(), string(b[len(b)-20:])) {
				t.Fatal("error echoes the input")
			}
			return
		}
		again, _ := w.MarshalPrivateText()
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted non-canonical %q", b)
		}
	})
}

// FuzzParseDocument: never panics, bounded output; accepted documents only
// hold 32-byte keys whose ids are fragments of the DID.
func FuzzParseDocument(f *testing.F) {
	did := "did:web:example.com"
	f.Add([]byte(`{"id":"did:web:example.com","verificationMethod":[{"id":"#k","type":"Multikey","publicKeyMultibase":"` + didSeed1[len("did:key:"):] + `"}],"authentication":["#k"]}`))
	f.Add([]byte(`{"id":"did:web:example.com","authentication":[{"id":"#j","type":"JsonWebKey2020","publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"AA"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := identity.ParseDocument(did, b)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v", err)
			}
			return
		}
		if doc.ID != did || len(doc.VerificationMethods) > 64 {
			t.Fatalf("doc %+v", doc)
		}
		for _, m := range doc.VerificationMethods {
			if len(m.PublicKey) != 32 || !strings.HasPrefix(m.ID, did+"#") {
				t.Fatalf("method %+v", m)
			}
		}
	})
}
