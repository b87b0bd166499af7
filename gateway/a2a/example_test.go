package a2a_test

import (
	"fmt"
	"net/http"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// Sign this agent's card for /.well-known/agent-card.json, and verify a
// remote agent's card against the did:key learned out of band before
// talking to it.
func ExampleVerifyAgentCard() {
	w, err := identity.GenerateWallet("agent")
	if err != nil {
		panic(err)
	}
	card := a2a.AgentCard{Name: "Echo", Description: "Echoes text", Version: "1.0.0", Organization: "Example",
		DocumentationURL: "https://example.com/docs", RPCURL: "https://agent.example.com/rpc"}
	signed, err := card.Sign(w.Signer())
	if err != nil {
		panic(err)
	}
	// What a client fetched from the well-known path:
	doc := signed.JSON()
	verified, err := a2a.VerifyAgentCard(doc, w.DID())
	fmt.Println(err, string(verified["name"]))

	stranger, _ := identity.GenerateWallet("stranger")
	_, err = a2a.VerifyAgentCard(doc, stranger.DID())
	fmt.Println(err)
	// Output:
	// <nil> "Echo"
	// AUTH_INVALID_SIGNATURE: a2a: agent card has no valid signature by the expected key
}

// The attested routes of the surface, for the server's talos.RouteTable.
func ExampleRoutes() {
	for _, r := range a2a.Routes() {
		fmt.Println(r.Pattern, r.Opcode)
	}
	// Output:
	// POST /rpc a2a.v1.rpc
	// POST /a2a/v1/rpc a2a.v1.rpc
	// POST /a2a/v1/{$} a2a.compat.rpc
}

// The capability scopes each method needs, under tool "a2a".
func ExampleLookupMethod() {
	m, _ := a2a.LookupMethod("message/stream")
	fmt.Println(m.Name, m.Scopes, m.Stream)
	// Output:
	// SendStreamingMessage [a2a.send a2a.subscribe] true
}

// The relay's sender_seq rule, as both stores apply it: an identical
// resend is a duplicate, a different frame at a used sender_seq a replay,
// a jump of more than ratchet.MaxSeqAhead a gap.
func ExampleCheckSenderSeq() {
	f := &ratchet.Frame{SessionID: "s", SenderID: "alice", SenderSeq: 7, FrameDigest: "d7"}
	fmt.Println(a2a.CheckSenderSeq(f, a2a.SeqState{Highest: 6}))
	fmt.Println(a2a.CheckSenderSeq(f, a2a.SeqState{UsedDigest: "d7", Highest: 9}))
	fmt.Println(a2a.CheckSenderSeq(f, a2a.SeqState{UsedDigest: "other", Highest: 9}))
	far := &ratchet.Frame{SessionID: "s", SenderID: "alice", SenderSeq: 2000, FrameDigest: "d"}
	fmt.Println(a2a.CheckSenderSeq(far, a2a.SeqState{Highest: 9}))
	// Output:
	// false <nil>
	// true <nil>
	// false REPLAY_DETECTED: sender_seq already used by another frame
	// false STATE_SEQUENCE_GAP: sender_seq too far ahead
}

// Mount the relay on a mux behind the server's Kernel middleware
// (here a stand-in wrapper), and list its attested routes for the
// route table.
func ExampleNewRelay() {
	relay, err := a2a.NewRelay(a2a.RelayConfig{
		Store: a2a.NewMemStore(),
		// In a server: kernelMiddleware.Wrap (talos.Kernel.Middleware).
		Wrap: func(h http.Handler) http.Handler { return h },
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	relay.Mount(mux)
	for _, r := range a2a.RelayTalosRoutes()[:3] {
		fmt.Println(r.Pattern, r.Opcode, r.AttestOnly)
	}
	// Output:
	// POST /a2a/sessions a2a.session.create true
	// POST /a2a/sessions/{id}/accept a2a.session.accept true
	// POST /a2a/sessions/{id}/rotate a2a.session.rotate true
}
