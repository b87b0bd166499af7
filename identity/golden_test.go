package identity_test

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestGoldenIdentityVectors runs the library's own pinned identity vectors
// (contracts/testdata/identity.json, through contracts.GoldenVectors): for
// each seed, the public key, did:key, address and deterministic signature;
// for each DID, its public key; cases that expect an error must fail with
// that code.
func TestGoldenIdentityVectors(t *testing.T) {
	vs, err := contracts.GoldenVectors("identity")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no identity golden vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			var in struct {
				SeedHex     string `json:"seed_hex"`
				MessageUTF8 string `json:"message_utf8"`
				DID         string `json:"did"`
			}
			if err := json.Unmarshal(v.Input, &in); err != nil {
				t.Fatal(err)
			}
			if in.DID != "" { // a DID to parse
				d, err := identity.ParseDID(in.DID)
				if got := contracts.Outcome(err); got != v.Expect {
					t.Fatalf("outcome %s, want %s (source: %s)", got, v.Expect, v.Source)
				}
				var out struct {
					PublicKeyHex string `json:"public_key_hex"`
				}
				if err := json.Unmarshal(v.Output, &out); err != nil {
					t.Fatal(err)
				}
				if got := hex.EncodeToString(d.PublicKey()); got != out.PublicKeyHex || d.String() != in.DID {
					t.Fatalf("public key %s, want %s", got, out.PublicKeyHex)
				}
				return
			}
			seed, err := hex.DecodeString(in.SeedHex)
			if err != nil {
				t.Fatal(err)
			}
			w, err := identity.WalletFromSeed(seed)
			if got := contracts.Outcome(err); got != v.Expect {
				t.Fatalf("outcome %s, want %s (source: %s)", got, v.Expect, v.Source)
			}
			if err != nil {
				return
			}
			var out struct {
				PublicKeyHex  string `json:"public_key_hex"`
				DID           string `json:"did"`
				Address       string `json:"address"`
				SignatureB64u string `json:"signature_b64u"`
			}
			if err := json.Unmarshal(v.Output, &out); err != nil {
				t.Fatal(err)
			}
			sig := contracts.EncodeBase64URL(w.Sign([]byte(in.MessageUTF8)))
			if hex.EncodeToString(w.PublicKey()) != out.PublicKeyHex || w.DID().String() != out.DID ||
				w.Address() != out.Address || sig != out.SignatureB64u {
				t.Fatalf("got pub %x did %s address %s sig %s; want %+v", w.PublicKey(), w.DID(), w.Address(), sig, out)
			}
			if !identity.Verify([]byte(in.MessageUTF8), w.Sign([]byte(in.MessageUTF8)), w.PublicKey()) {
				t.Fatal("signature does not verify")
			}
		})
	}
}
