package identity_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
)

var benchMsg = []byte(`{"exp":1767500000,"issuer":"did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG","nonce":"0123456789abcdef","scope":[{"actions":["read"],"tool":"filesystem"}],"subject":"did:key:z6Mk","version":"1.0"}`)

// BenchmarkSign compares Wallet.Sign with bare crypto/ed25519 Sign on the
// same key and message.
func BenchmarkSign(b *testing.B) {
	w, _ := identity.WalletFromSeed(seedN(1))
	priv := ed25519.NewKeyFromSeed(seedN(1))
	b.Run("wallet", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			w.Sign(benchMsg)
		}
	})
	b.Run("ed25519_sign", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			ed25519.Sign(priv, benchMsg)
		}
	})
}

// BenchmarkVerify compares identity.Verify and DID.Verify with bare
// crypto/ed25519 Verify.
func BenchmarkVerify(b *testing.B) {
	w, _ := identity.WalletFromSeed(seedN(1))
	sig := w.Sign(benchMsg)
	pub := w.PublicKey()
	d := w.DID()
	b.Run("identity_verify", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			if !identity.Verify(benchMsg, sig, pub) {
				b.Fatal("verify failed")
			}
		}
	})
	b.Run("did_verify", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			if !d.Verify(benchMsg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	b.Run("ed25519_verify", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			if !ed25519.Verify(pub, benchMsg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

func BenchmarkDID(b *testing.B) {
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			if _, err := identity.ParseDID(didSeed1); err != nil {
				b.Fatal(err)
			}
		}
	})
	d, _ := identity.ParseDID(didSeed1)
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			_ = d.String()
		}
	})
}

// BenchmarkAttestationVerify measures a full request verification (header
// parsing, key resolution from did:key, body canonicalization, signature,
// nonce claim) beside the one ed25519.Verify it contains.
func BenchmarkAttestationVerify(b *testing.B) {
	w, _ := identity.WalletFromSeed(seedN(1))
	body := `{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4"}`
	signer, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer(), Now: func() time.Time { return t0 }})
	req, _ := http.NewRequest(http.MethodPost, "https://x.example/v1/chat/completions?version=2023-01-01", strings.NewReader(body))
	if err := signer.Sign(req, "llm.chat.completions"); err != nil {
		b.Fatal(err)
	}
	store := alwaysFirst{}
	v := newVerifier(b, w, t0, "llm.chat.completions", store)
	b.Run("verify_request", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		r, _ := http.NewRequest(http.MethodPost, "/v1/chat/completions?version=2023-01-01", nil)
		r.RequestURI = "/v1/chat/completions?version=2023-01-01"
		r.Header = req.Header
		for b.Loop() {
			r.Body = nopBody{strings.NewReader(body)}
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	sig, _ := identity.ParseAttestationHeaders(req.Header)
	input := identity.AttestationSigningInput([]byte(body), "POST", "/v1/chat/completions?version=2023-01-01", sig.Nonce, "1700000000", "llm.chat.completions")
	pub := w.PublicKey()
	b.Run("ed25519_verify", func(b *testing.B) {
		b.ReportAllocs()
		cpuMetric(b)
		for b.Loop() {
			if !ed25519.Verify(pub, input, sig.Signature) {
				b.Fatal("verify failed")
			}
		}
	})
}

type nopBody struct{ *strings.Reader }

func (nopBody) Close() error { return nil }

// alwaysFirst is a NonceStore that accepts every nonce, so a benchmark can
// verify one request repeatedly.
type alwaysFirst struct{}

func (alwaysFirst) Claim(context.Context, string, time.Duration) (bool, error) {
	return true, nil
}
