package ratchet

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// vectorWires returns the v1.1.0 trace envelopes when the contracts are
// present (seeds only: absence does not fail the fuzz targets).
func vectorWires(f *testing.F) [][]byte {
	dir := os.Getenv("TALOS_CONTRACTS_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(f), "..", "shared", "reference", "talos-contracts")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "test_vectors/sdk/ratchet/v1_1_0_roundtrip.json"))
	if err != nil {
		return nil
	}
	var tr trace
	if json.Unmarshal(raw, &tr) != nil {
		return nil
	}
	var out [][]byte
	for _, s := range tr.Steps {
		if s.Wire != "" {
			if w, err := b64.DecodeString(s.Wire); err == nil {
				out = append(out, w)
			}
		}
	}
	return out
}

// FuzzDecrypt: Decrypt never panics, and on error the session state is
// byte-for-byte unchanged.
func FuzzDecrypt(f *testing.F) {
	alice, bob := newPair(f, Config{})
	var wires [][]byte
	for _, m := range []string{"a", "b", "c"} {
		w, _ := alice.Encrypt([]byte(m))
		wires = append(wires, w)
	}
	bob.Decrypt(wires[0]) // bob holds a chain; wires[1:] are pending
	state := bob.appendState(nil)
	for _, w := range append(wires, vectorWires(f)...) {
		f.Add(w)
	}
	f.Add([]byte(`{"ciphertext":"","header":{"dh":"","n":0,"pn":0},"nonce":""}`))
	f.Fuzz(func(t *testing.T, wire []byte) {
		s, err := parseState(state, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decrypt(wire); err != nil {
			if got := s.appendState(nil); !bytes.Equal(got, state) {
				t.Fatalf("failed Decrypt changed the state: %v", err)
			}
		}
	})
}

// FuzzParseMessage: an accepted envelope re-encodes to exactly its input,
// and its header parses back from its canonical form.
func FuzzParseMessage(f *testing.F) {
	alice, _ := newPair(f, Config{})
	w, _ := alice.Encrypt([]byte("seed"))
	f.Add(w)
	for _, v := range vectorWires(f) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		m, err := ParseMessage(wire)
		if err != nil {
			return
		}
		if again := m.AppendWire(nil); !bytes.Equal(again, wire) {
			t.Fatalf("accepted non-canonical envelope:\n in  %q\n out %q", wire, again)
		}
		hdr := m.Header.AppendCanonical(nil)
		if h, err := ParseHeader(hdr); err != nil || h != m.Header {
			t.Fatalf("header does not round-trip: %v", err)
		}
	})
}

// FuzzParseHeader: an accepted header re-encodes to exactly its input.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"dh":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","n":5,"pn":10}`))
	f.Add([]byte(`{"dh":"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI","n":0,"pn":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if again := h.AppendCanonical(nil); !bytes.Equal(again, b) {
			t.Fatalf("accepted non-canonical header %q", b)
		}
	})
}

// FuzzParseFrame: an accepted frame verifies, and its canonical JSON parses
// back to the same frame.
func FuzzParseFrame(f *testing.F) {
	alice, _ := newPair(f, Config{})
	fr, err := alice.EncryptFrame("01890a5d-ac96-774b-bcce-b302099a8057", "alice", 3, []byte("seed"), time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := json.Marshal(fr)
	f.Add(raw)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			return
		}
		if err := fr.Verify(); err != nil {
			t.Fatalf("accepted frame does not verify: %v", err)
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := ParseFrame(again)
		if err != nil || *fr2 != *fr {
			t.Fatalf("frame does not round-trip: %v", err)
		}
	})
}

// FuzzParseBundle: an accepted bundle re-encodes and parses back equal.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(`{"identity_key":"E80vGn1T8vhm2dystAQ5VBKzpbXf8_zf98es-RuGZkw","signed_prekey":"ZPLNJFKa-PyNyrhA0PD9KAd_2KMiPfzkZe9hz9e6xnc","prekey_signature":"aubPCBHtdqGqq7vBOSFzLl4o5FFfO4jUaTVPtVO3mJ9Q2cYmd9SSQ7kEkwFDADLJqB2Uk66xcciuW1r4rD4lCA","one_time_prekey":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bu, err := ParseBundle(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(bu)
		if err != nil {
			t.Fatal(err)
		}
		bu2, err := ParseBundle(again)
		if err != nil || !bytes.Equal(bu2.IdentityKey, bu.IdentityKey) || bu2.SignedPrekey != bu.SignedPrekey ||
			!bytes.Equal(bu2.PrekeySignature, bu.PrekeySignature) || !bytes.Equal(bu2.OneTimePrekey, bu.OneTimePrekey) {
			t.Fatalf("bundle does not round-trip: %v", err)
		}
		_ = bu.Verify() // must not panic
	})
}

// FuzzGroupOpen: Open never panics and a failed Open leaves the receiver
// able to open the genuine pending message.
func FuzzGroupOpen(f *testing.F) {
	n, d := newGroupNet(f, 3)
	f.Add(n.send(d[0], "seed"))
	f.Add([]byte("TG\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n.groups[d[1]].Open(b)
		msg := n.send(d[0], "genuine")
		if _, pt, err := n.groups[d[1]].Open(msg); err != nil || string(pt) != "genuine" {
			t.Fatalf("genuine message after a fuzzed one: %v", err)
		}
	})
}

// FuzzParseSetupProof: an accepted proof re-encodes to canonical JSON that
// parses back to the same proof.
func FuzzParseSetupProof(f *testing.F) {
	w, _ := identity.GenerateWallet("a")
	bw, _ := identity.GenerateWallet("b")
	p, _ := GeneratePrekey(bw.Signer(), nil)
	_, proof, err := InitiateAuthenticated(p.Bundle(), w.Signer(), Config{})
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := json.Marshal(proof)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := ParseSetupProof(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(pr)
		if err != nil {
			t.Fatal(err)
		}
		pr2, err := ParseSetupProof(again)
		if err != nil || pr2.Initiator != pr.Initiator || pr2.EphemeralKey != pr.EphemeralKey ||
			pr2.SignedPrekey != pr.SignedPrekey || !bytes.Equal(pr2.Signature, pr.Signature) {
			t.Fatalf("setup proof does not round-trip: %v", err)
		}
	})
}
