// Command quickstart is the README's quickstart: an agent identity, a signed
// message, and a capability token checked by an Authorizer.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

func main() {
	// An agent's identity: an Ed25519 wallet and its did:key.
	agent, err := identity.GenerateWallet("agent-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(agent.DID().String()[:9]) // did:key:z

	// Sign and verify.
	msg := []byte("hello, talos")
	sig := agent.Sign(msg)
	fmt.Println(identity.Verify(msg, sig, agent.PublicKey()))

	// An operator grants the agent one tool action, for one hour.
	operator, err := identity.GenerateWallet("operator")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := capability.Issue(operator.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "search", Actions: []string{"query"}}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		log.Fatal(err)
	}

	// The service trusts the operator and authorizes requests.
	authz, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{operator.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, action := range []string{"query", "delete"} {
		d, err := authz.Authorize(context.Background(), capability.Request{
			Capability: tok.Encode(), Principal: agent.DID(), Tool: "search", Action: action,
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(action, d.Allowed, d.Reason)
	}
}
