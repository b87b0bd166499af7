package ratchet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// BenchmarkMessage1KiB compares one ratchet message (Encrypt + Decrypt of
// 1 KiB on one chain) with the primitives it cannot avoid: two KDF_CK chain
// steps (each two HKDF-SHA256 calls, as in the contract) plus one
// ChaCha20-Poly1305 seal and open.
func BenchmarkMessage1KiB(b *testing.B) {
	msg := make([]byte, 1024)
	b.Run("ours", func(b *testing.B) {
		alice, bob := newPair(b, Config{})
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			w, err := alice.Encrypt(msg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.Decrypt(w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("primitives", func(b *testing.B) {
		var ck, mk [32]byte
		nonce := make([]byte, 12)
		aad := []byte(`{"dh":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","n":0,"pn":0}`)
		ct := make([]byte, 0, len(msg)+16)
		pt := make([]byte, 0, len(msg))
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			for range 2 {
				io.ReadFull(hkdf.New(sha256.New, ck[:], nil, []byte(infoMessage)), mk[:])
				io.ReadFull(hkdf.New(sha256.New, ck[:], nil, []byte(infoChain)), ck[:])
			}
			aead, _ := chacha20poly1305.New(mk[:])
			ct = aead.Seal(ct[:0], nonce, msg, aad)
			var err error
			if pt, err = aead.Open(pt[:0], nonce, ct, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPingPong alternates the direction of every message, so each
// one costs the receiver a DH ratchet step: three X25519 operations (the
// DH with the new remote key, a key generation, the DH with the new key).
func BenchmarkPingPong(b *testing.B) {
	msg := make([]byte, 64)
	b.Run("ours", func(b *testing.B) {
		alice, bob := newPair(b, Config{})
		w, _ := alice.Encrypt(msg)
		bob.Decrypt(w)
		b.ReportAllocs()
		from, to := bob, alice
		for b.Loop() {
			w, err := from.Encrypt(msg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := to.Decrypt(w); err != nil {
				b.Fatal(err)
			}
			from, to = to, from
		}
	})
	b.Run("x25519x3", func(b *testing.B) {
		priv := make([]byte, 32)
		priv[0] = 9
		pub, _ := curve25519.X25519(priv, curve25519.Basepoint)
		b.ReportAllocs()
		for b.Loop() {
			for range 3 {
				if _, err := curve25519.X25519(priv, pub); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkGroup50 measures a message to a 50-member group: the sender's
// cost (one encryption and one signature) against fanning the message out
// over 50 pairwise ratchet sessions, and the whole delivery (send plus 50
// verifications and decryptions) against 50 bare ed25519.Verify calls.
func BenchmarkGroup50(b *testing.B) {
	const members = 50
	msg := make([]byte, 256)
	// Only d[0] (the owner), d[1] and d[2] (the senders) need pairwise
	// sessions with everyone.
	n, d := newGroupNetPairs(b, members+1, func(i, j int) bool { return i <= 2 || j <= 2 })
	sender := n.groups[d[1]]
	b.Run("group_send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sender.Send(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pairwise_fanout_send", func(b *testing.B) {
		sessions := make([]*Session, members)
		for i := range sessions {
			sessions[i], _ = newPair(b, Config{})
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, s := range sessions {
				if _, err := s.Encrypt(msg); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("group_deliver", func(b *testing.B) {
		// Another sender: group_send left the receivers behind on d[1]'s chain.
		sender := n.groups[d[2]]
		b.ReportAllocs()
		for b.Loop() {
			m, err := sender.Send(msg)
			if err != nil {
				b.Fatal(err)
			}
			for _, at := range d {
				if at == d[2] {
					continue
				}
				if _, _, err := n.groups[at].Open(m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("ed25519_verify_x50", func(b *testing.B) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		sig := ed25519.Sign(priv, msg)
		b.ReportAllocs()
		for b.Loop() {
			for range members {
				if !ed25519.Verify(pub, msg, sig) {
					b.Fatal("verify")
				}
			}
		}
	})
}

func TestAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts vary under -short coverage tooling")
	}
	alice, bob := newPair(t, Config{})
	msg := make([]byte, 1024)
	var w []byte
	enc := testing.AllocsPerRun(50, func() {
		w, _ = alice.Encrypt(msg)
	})
	var wires [][]byte
	for range 60 {
		x, _ := alice.Encrypt(msg)
		wires = append(wires, x)
	}
	i := 0
	dec := testing.AllocsPerRun(50, func() {
		if _, err := bob.Decrypt(wires[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	_ = w
	// Encrypt: ciphertext buffer, envelope, AEAD. Decrypt: plaintext buffer, AEAD.
	if enc > 3 || dec > 2 {
		t.Fatalf("Encrypt allocates %.0f times (budget 3), Decrypt %.0f (budget 2)", enc, dec)
	}
}
