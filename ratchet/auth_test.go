package ratchet

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/talosgo/talos/identity"
)

func TestAuthenticatedSetup(t *testing.T) {
	bobW, _ := identity.GenerateWallet("bob")
	aliceW, _ := identity.GenerateWallet("alice")
	malloryW, _ := identity.GenerateWallet("mallory")
	p, err := GeneratePrekey(bobW.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, proof, err := InitiateAuthenticated(p.Bundle(), aliceW.Signer(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(proof)
	if err != nil {
		t.Fatal(err)
	}
	proof2, err := ParseSetupProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(proof2); string(again) != string(raw) {
		t.Fatalf("proof JSON does not round-trip:\n%s\n%s", raw, again)
	}

	if _, err := AcceptAuthenticated(p, proof2, malloryW.DID(), Config{}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("wrong expected initiator: %v", err)
	}
	forged := *proof2
	forged.EphemeralKey[0] ^= 1
	if _, err := AcceptAuthenticated(p, &forged, aliceW.DID(), Config{}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("tampered ephemeral key: %v", err)
	}
	// Mallory re-signs Alice's ephemeral key as herself: rejected when Alice is expected.
	stolen := *proof2
	stolen.Initiator = malloryW.DID()
	stolen.Signature = malloryW.Sign(stolen.signingInput())
	if _, err := AcceptAuthenticated(p, &stolen, aliceW.DID(), Config{}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("re-signed proof: %v", err)
	}
	otherP, _ := GeneratePrekey(bobW.Signer(), nil)
	if _, err := AcceptAuthenticated(otherP, proof2, aliceW.DID(), Config{}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("proof for another prekey: %v", err)
	}

	bob, err := AcceptAuthenticated(p, proof2, aliceW.DID(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Mallory holds the public bundle and opens her own contract-only session:
	// the authenticated responder does not accept her messages.
	mallory, err := Initiate(p.Bundle(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	before := bob.appendState(nil)
	if _, err := bob.Decrypt(mustEncrypt(t, mallory, "I am Alice")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("mallory's message: %v", err)
	}
	if string(before) != string(bob.appendState(nil)) {
		t.Fatal("state changed")
	}
	// The authenticated responder may speak first.
	mustDecrypt(t, alice, mustEncrypt(t, bob, "hello alice"), "hello alice")
	mustDecrypt(t, bob, mustEncrypt(t, alice, "hello bob"), "hello bob")
	mustDecrypt(t, alice, mustEncrypt(t, bob, "again"), "again")
}

func TestSetupProofParseRejects(t *testing.T) {
	for _, raw := range []string{
		`{}`,
		`{"type":"talos.ratchet.setup.v1","initiator":"did:key:z","ephemeral_key":"","signed_prekey":"","responder_key":"","signature":""}`,
		`{"type":"x"}`,
		`[]`,
	} {
		if _, err := ParseSetupProof([]byte(raw)); err == nil {
			t.Fatalf("accepted %s", raw)
		}
	}
}
