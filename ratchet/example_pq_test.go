package ratchet_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// A responder offers the hybrid (X25519 + ML-KEM-768) setup; the initiator
// negotiates it from the bundle and sends the setup data beside its first
// message. A bundle stripped of its ML-KEM key is refused.
func ExampleInitiateHybrid() {
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, err := ratchet.GenerateHybridPrekey(bobWallet.Signer(), nil)
	if err != nil {
		log.Fatal(err)
	}
	bundle := prekey.Bundle() // a contract bundle plus pq_prekey, pq_prekey_signature

	alice, setup, err := ratchet.InitiateHybrid(bundle, ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	setupJSON, _ := json.Marshal(setup) // send with the first message
	wire, _ := alice.Encrypt([]byte("hello, post-quantum bob"))

	received, err := ratchet.ParseHybridSetup(setupJSON)
	if err != nil {
		log.Fatal(err)
	}
	bob, err := ratchet.AcceptHybrid(prekey, received, ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	pt, err := bob.Decrypt(wire)
	fmt.Println(string(pt), err)

	// An attacker strips the extension: the signed prekey still says it
	// belongs to a hybrid bundle.
	stripped := bundle
	stripped.PQPrekey, stripped.PQPrekeySignature = nil, nil
	_, _, err = ratchet.InitiateHybrid(stripped, ratchet.Config{})
	fmt.Println(errors.Is(err, ratchet.ErrDowngrade))
	// Output:
	// hello, post-quantum bob <nil>
	// true
}

// A Record keeps earlier sessions with a peer, so messages still in flight
// on an old session open after a new one was set up.
func ExampleRecord() {
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, _ := ratchet.GeneratePrekey(bobWallet.Signer(), nil)

	oldAlice, _ := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	oldBob, _ := ratchet.Accept(prekey, ratchet.Config{})
	late, _ := oldAlice.Encrypt([]byte("sent before the new session"))

	newAlice, _ := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	newBob, _ := ratchet.Accept(prekey, ratchet.Config{})

	rec := ratchet.NewRecord(oldBob)
	rec.Promote(newBob) // oldBob is archived
	w, _ := newAlice.Encrypt([]byte("new session"))
	pt, err := rec.Decrypt(w)
	fmt.Println(string(pt), err)
	pt, err = rec.Decrypt(late)
	fmt.Println(string(pt), err, rec.Archived())
	// Output:
	// new session <nil>
	// sent before the new session <nil> 1
}
