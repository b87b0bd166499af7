package ratchet

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
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

// BenchmarkHeaderEncryption compares header-encrypted sessions with plain
// ones in the same run: one 1 KiB message on a chain (Encrypt + Decrypt),
// and a ping-pong where every message is a DH step (the receiver first
// tries its current header key, then the next one). "header-aead" is the
// primitive the extension adds per message: sealing and opening the
// 40-byte header with ChaCha20-Poly1305.
func BenchmarkHeaderEncryption(b *testing.B) {
	msg := make([]byte, 1024)
	run := func(b *testing.B, alice, bob *Session, pingpong bool) {
		if pingpong {
			w, _ := alice.Encrypt(msg[:64])
			bob.Decrypt(w)
		}
		b.ReportAllocs()
		from, to := alice, bob
		for b.Loop() {
			m := msg
			if pingpong {
				m = msg[:64]
			}
			w, err := from.Encrypt(m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := to.Decrypt(w); err != nil {
				b.Fatal(err)
			}
			if pingpong {
				from, to = to, from
			}
		}
	}
	b.Run("message1KiB/plain", func(b *testing.B) {
		a, c := newPair(b, Config{})
		b.SetBytes(1024)
		run(b, a, c, false)
	})
	b.Run("message1KiB/he", func(b *testing.B) {
		a, c := newHEPair(b)
		b.SetBytes(1024)
		run(b, a, c, false)
	})
	b.Run("pingpong/plain", func(b *testing.B) {
		a, c := newPair(b, Config{})
		run(b, a, c, true)
	})
	b.Run("pingpong/he", func(b *testing.B) {
		a, c := newHEPair(b)
		run(b, a, c, true)
	})
	b.Run("header-aead", func(b *testing.B) {
		var hk [32]byte
		var eh [heHeaderSize]byte
		var hp [heHeaderPlain]byte
		var h Header
		b.ReportAllocs()
		for b.Loop() {
			a, _ := chacha20poly1305.New(hk[:])
			a.Seal(eh[nonceSize:nonceSize], eh[:nonceSize], hp[:], []byte(heHeaderAAD))
			if !openHeader(&hk, &eh, &h) {
				b.Fatal("open")
			}
		}
	})
}
