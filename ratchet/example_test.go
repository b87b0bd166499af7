package ratchet_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// A responder publishes a prekey bundle; an initiator opens a session with
// it; they exchange messages.
func Example() {
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, err := ratchet.GeneratePrekey(bobWallet.Signer(), nil)
	if err != nil {
		log.Fatal(err)
	}
	bundle := prekey.Bundle() // publish this (JSON: contract x3dh_prekey_bundle)

	alice, err := ratchet.Initiate(bundle, ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := ratchet.Accept(prekey, ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}

	wire, _ := alice.Encrypt([]byte("hello bob"))
	pt, err := bob.Decrypt(wire)
	fmt.Println(string(pt), err)

	wire, _ = bob.Encrypt([]byte("hi alice"))
	pt, err = alice.Decrypt(wire)
	fmt.Println(string(pt), err)

	// A replayed message is rejected and changes nothing.
	_, err = alice.Decrypt(wire)
	fmt.Println(contracts.CodeOf(err))
	// Output:
	// hello bob <nil>
	// hi alice <nil>
	// RATCHET_AUTH_FAILED
}

// The initiator proves who it is with a signed setup proof; the responder
// accepts only the initiator it expects.
func ExampleAcceptAuthenticated() {
	aliceWallet, _ := identity.GenerateWallet("alice")
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, _ := ratchet.GeneratePrekey(bobWallet.Signer(), nil)

	alice, proof, err := ratchet.InitiateAuthenticated(prekey.Bundle(), aliceWallet.Signer(), ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	// proof travels to bob beside the first message (its JSON is canonical).
	bob, err := ratchet.AcceptAuthenticated(prekey, proof, aliceWallet.DID(), ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	wire, _ := bob.Encrypt([]byte("bob may speak first"))
	pt, _ := alice.Decrypt(wire)
	fmt.Println(string(pt))

	mallory, _ := identity.GenerateWallet("mallory")
	_, err = ratchet.AcceptAuthenticated(prekey, proof, mallory.DID(), ratchet.Config{})
	fmt.Println(contracts.CodeOf(err))
	// Output:
	// bob may speak first
	// X3DH_INVALID_SIGNATURE
}

// Channels run a session over a transport and persist it, sealed, after
// every message.
func ExampleNewChannel() {
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, _ := ratchet.GeneratePrekey(bobWallet.Signer(), nil)
	alice, _ := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	bob, _ := ratchet.Accept(prekey, ratchet.Config{})

	keyring := identity.NewKeyring()
	kek := make([]byte, 32)
	rand.Read(kek)
	keyring.Add("kek-1", kek)
	keyring.SetPrimary("kek-1")
	store := ratchet.NewMemStore()

	ta, tb := ratchet.NewMemPipe()
	a, _ := ratchet.NewChannel(alice, ta, ratchet.ChannelConfig{})
	b, _ := ratchet.NewChannel(bob, tb, ratchet.ChannelConfig{Store: store, Sealer: keyring, ID: "bob:alice"})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.Send(ctx, []byte("persisted"))
	pt, err := b.Receive(ctx)
	fmt.Println(string(pt), err)

	// Another process can resume bob's side from the store.
	_, version, err := ratchet.LoadSession(ctx, store, keyring, "bob:alice", ratchet.Config{})
	fmt.Println(version, err)
	// Output:
	// persisted <nil>
	// 1 <nil>
}

// A2A encrypted frames carry ratchet messages with contract digests; the
// receiver applies the sender_seq rules with a SeqTracker.
func ExampleSession_EncryptFrame() {
	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, _ := ratchet.GeneratePrekey(bobWallet.Signer(), nil)
	alice, _ := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	bob, _ := ratchet.Accept(prekey, ratchet.Config{})

	sessionID := contracts.NewUUIDv7()
	frame, err := alice.EncryptFrame(sessionID, "agent:alice", 0, []byte("framed"), time.Now())
	if err != nil {
		log.Fatal(err)
	}
	raw, _ := frame.MarshalJSON()
	fmt.Println(contracts.Validate("a2a/encrypted_frame", raw))

	tracker := ratchet.NewSeqTracker()
	received, _ := ratchet.ParseFrame(raw)
	if d, err := tracker.Check(received); err == nil && d == ratchet.Deliver {
		pt, err := bob.DecryptFrame(received)
		if err == nil {
			tracker.Commit(received)
		}
		fmt.Println(string(pt), err)
	}
	d, err := tracker.Check(received) // the same frame again
	fmt.Println(d == ratchet.Duplicate, err)
	// Output:
	// <nil>
	// framed <nil>
	// true <nil>
}

// A group: the owner adds a member over a pairwise session; members then
// send one signed message that every member opens.
func ExampleCreateGroup() {
	aliceW, _ := identity.GenerateWallet("alice")
	bobW, _ := identity.GenerateWallet("bob")

	// Pairwise session alice <-> bob, authenticated so that either may speak first.
	prekey, _ := ratchet.GeneratePrekey(bobW.Signer(), nil)
	aliceToBob, proof, _ := ratchet.InitiateAuthenticated(prekey.Bundle(), aliceW.Signer(), ratchet.Config{})
	bobToAlice, _ := ratchet.AcceptAuthenticated(prekey, proof, aliceW.DID(), ratchet.Config{})

	alice, _ := ratchet.CreateGroup(aliceW, ratchet.GroupConfig{})
	bob, _ := ratchet.JoinGroup(alice.ID(), aliceW.DID(), bobW, ratchet.GroupConfig{})
	alice.Connect(bobW.DID(), aliceToBob)
	bob.Connect(aliceW.DID(), bobToAlice)

	groups := map[identity.DID]*ratchet.Group{aliceW.DID(): alice, bobW.DID(): bob}
	var deliver func(from identity.DID, out []ratchet.GroupOutbound)
	deliver = func(from identity.DID, out []ratchet.GroupOutbound) {
		for _, o := range out {
			more, err := groups[o.To].Handle(from, o.Wire)
			if err != nil {
				log.Fatal(err)
			}
			deliver(o.To, more)
		}
	}
	out, err := alice.AddMember(bobW.DID())
	if err != nil {
		log.Fatal(err)
	}
	deliver(aliceW.DID(), out)

	msg, _ := bob.Send([]byte("hello group"))
	sender, pt, err := alice.Open(msg)
	fmt.Println(sender == bobW.DID(), string(pt), err)
	fmt.Println(len(alice.Events()), "events")
	// Output:
	// true hello group <nil>
	// 2 events
}

// A session is stored sealed under a key-encryption key held by an
// identity.Keyring, bound to its id, and restored later (after a restart,
// in another process sharing the keyring). The blob only opens with the
// same keyring and the same aad.
func ExampleSession_MarshalSealed() {
	kr := identity.NewKeyring()
	kek := make([]byte, 32) // in production: from a secret manager
	if _, err := rand.Read(kek); err != nil {
		log.Fatal(err)
	}
	if err := kr.Add("kek-2026-01", kek); err != nil {
		log.Fatal(err)
	}
	if err := kr.SetPrimary("kek-2026-01"); err != nil {
		log.Fatal(err)
	}

	bobWallet, _ := identity.GenerateWallet("bob")
	prekey, _ := ratchet.GeneratePrekey(bobWallet.Signer(), nil)
	alice, _ := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	bob, _ := ratchet.Accept(prekey, ratchet.Config{})
	first, _ := alice.Encrypt([]byte("first"))
	if _, err := bob.Decrypt(first); err != nil {
		log.Fatal(err)
	}

	aad := []byte("session:alice-bob")
	sealed, err := bob.MarshalSealed(kr, aad)
	if err != nil {
		log.Fatal(err)
	}
	bob.Destroy() // the in-memory copy is no longer needed

	restored, err := ratchet.UnmarshalSealed(kr, sealed, aad, ratchet.Config{})
	if err != nil {
		log.Fatal(err)
	}
	second, _ := alice.Encrypt([]byte("second"))
	pt, err := restored.Decrypt(second)
	fmt.Println(string(pt), err)

	// The blob is bound to its aad, and printing the session shows no key.
	_, err = ratchet.UnmarshalSealed(kr, sealed, []byte("session:other"), ratchet.Config{})
	fmt.Println(contracts.CodeOf(err))
	fmt.Printf("%v %x\n", restored, restored)
	// Output:
	// second <nil>
	// TALOS_CRYPTO_ERROR
	// ratchet.Session(redacted) ratchet.Session(redacted)
}
