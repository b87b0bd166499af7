package a2a_test

import (
	"fmt"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/identity"
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
