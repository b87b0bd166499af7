package ratchet

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"testing"

	"golang.org/x/crypto/curve25519"
)

// BenchmarkHybridSetup compares the hybrid setup, both sides (InitiateHybrid:
// two Ed25519 verifications, ML-KEM key parsing and encapsulation, an X25519
// key generation and DH; AcceptHybrid: decapsulation and a DH; HKDFs), with
// the contract setup and with the bare X25519 + ML-KEM-768 primitives it
// cannot avoid, run in the same process: three X25519 operations, parsing
// the encapsulation key, Encapsulate and Decapsulate. "verify" is the two
// Ed25519 verifications that both setups add on top.
func BenchmarkHybridSetup(b *testing.B) {
	p := sharedHybridPrekey(b)
	bundle := p.Bundle()
	b.Run("hybrid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, setup, err := InitiateHybrid(bundle, Config{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := AcceptHybrid(p, setup, Config{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("contract", func(b *testing.B) {
		// Initiate, and the responder's half of the contract setup (done by
		// its first Decrypt) run directly.
		cb := bundle
		cb.PQPrekey, cb.PQPrekeySignature = nil, nil
		b.ReportAllocs()
		for b.Loop() {
			s, err := Initiate(cb, Config{})
			if err != nil {
				b.Fatal(err)
			}
			r, _ := Accept(p, Config{})
			if err := initResponder(&r.st, &s.st.dhs.pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("primitives", func(b *testing.B) {
		priv := make([]byte, 32)
		priv[0] = 9
		ekBytes := bundle.PQPrekey
		b.ReportAllocs()
		for b.Loop() {
			pub, _ := curve25519.X25519(priv, curve25519.Basepoint)
			curve25519.X25519(priv, pub)
			curve25519.X25519(priv, pub)
			ek, err := mlkem.NewEncapsulationKey768(ekBytes)
			if err != nil {
				b.Fatal(err)
			}
			_, ct := ek.Encapsulate()
			if _, err := p.kem.Decapsulate(ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		msg := pqSigningInput(&bundle.SignedPrekey, bundle.PQPrekey)
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(bundle.IdentityKey, bundle.SignedPrekey[:], bundle.PrekeySignature) ||
				!ed25519.Verify(bundle.IdentityKey, msg, bundle.PQPrekeySignature) {
				b.Fatal("verify")
			}
		}
	})
}
