package capability_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

func seeded(b byte) *identity.Wallet {
	seed := make([]byte, 32)
	seed[31] = b
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		log.Fatal(err)
	}
	return w
}

func ExampleIssue() {
	issuer, agent := seeded(1), seeded(2)
	tok, err := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "filesystem", Actions: []string{"read"}}},
		time.Unix(1767504000, 0), &capability.IssueOptions{Nonce: "unique-nonce-12345678"})
	if err != nil {
		log.Fatal(err)
	}
	parsed, err := capability.Parse(tok.Encode())
	if err != nil {
		log.Fatal(err)
	}
	err = capability.Verify(parsed, issuer.PublicKey(), time.Unix(1767500000, 0))
	fmt.Println(err == nil, parsed.Authorize("filesystem", "read"), parsed.Authorize("filesystem", "write"))
	err = capability.Verify(parsed, issuer.PublicKey(), time.Unix(1767600000, 0))
	fmt.Println(err)
	// Output:
	// true true false
	// TALOS_INVALID_CAPABILITY: capability: token expired
}

func ExampleVerifier_Authorize() {
	issuer, agent, helper := seeded(1), seeded(2), seeded(3)
	now := time.Unix(1767500000, 0)
	clock := func() time.Time { return now }
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(clock),
		Now:            clock,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	root, _ := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "fs", Actions: []string{"read", "write"}}}, now.Add(time.Hour), nil)
	// The agent hands a read-only slice of its capability to a helper.
	child, err := capability.Delegate(root, agent.Signer(), helper.DID(),
		[]capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, now.Add(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	chain := capability.Chain{root, child}.Encode()
	ctx := context.Background()
	for _, action := range []string{"read", "write"} {
		d, _ := v.Authorize(ctx, capability.Request{Capability: chain, Principal: helper.DID(), Tool: "fs", Action: action})
		fmt.Println(action, d.Allowed, d.Reason, d.ChainDepth)
	}
	// Someone else presenting the helper's chain is refused.
	d, _ := v.Authorize(ctx, capability.Request{Capability: chain, Principal: agent.DID(), Tool: "fs", Action: "read"})
	fmt.Println(d.Reason)
	// Revoking the root revokes the delegated chain at once.
	_ = v.Revoke(ctx, root)
	d, _ = v.Authorize(ctx, capability.Request{Capability: chain, Principal: helper.DID(), Tool: "fs", Action: "read"})
	fmt.Println(d.Reason, d.ErrorCode())
	// Output:
	// read true ALLOWED 2
	// write false SCOPE_MISMATCH 2
	// HOLDER_MISMATCH
	// REVOKED AUTH_REVOKED
}

func ExampleSignMCPRequest() {
	w := seeded(1)
	f, err := capability.SignMCPRequest(w.Signer(), []byte(`{"method":"read","params":{"path":"/data"}}`),
		"session-123", "corr-456", "filesystem", "read", 1767500000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(f.PayloadBytes))
	ok, _ := capability.VerifyMCPResponse(f, "corr-456", w.PublicKey())
	bad, _ := capability.VerifyMCPResponse(f, "corr-789", w.PublicKey())
	fmt.Println(ok, bad)
	// Output:
	// {"action":"read","correlation_id":"corr-456","request":{"method":"read","params":{"path":"/data"}},"session_id":"session-123","timestamp":1767500000,"tool":"filesystem"}
	// true false
}

// A grant limited to read actions, and a registry that says which actions
// read. The registry also makes the Verifier deny tools it does not list.
func ExampleGrant_readOnly() {
	issuer, agent := seeded(1), seeded(2)
	now := time.Unix(1767500000, 0)
	clock := func() time.Time { return now }
	reg, err := capability.NewToolRegistry([]capability.ToolEntry{
		{Tool: "db", Action: "query", Class: capability.ClassRead},
		{Tool: "db", Action: "update", Class: capability.ClassWrite, RequiresIdempotencyKey: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(clock),
		Registry:       reg,
		Now:            clock,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	tok, err := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "db", Actions: []string{"query", "update", "drop"}, ReadOnly: true}},
		now.Add(time.Hour), &capability.IssueOptions{Nonce: "nonce-for-example-1"})
	if err != nil {
		log.Fatal(err)
	}
	// The limit is the scope member "read_only": true, inside the signed bytes.
	signed, _, _ := strings.Cut(string(tok.SigningInput()), `,"subject"`)
	fmt.Println(signed)
	for _, action := range []string{"query", "update", "drop"} {
		d, _ := v.Authorize(context.Background(), capability.Request{Capability: tok.Encode(), Principal: agent.DID(), Tool: "db", Action: action})
		fmt.Println(action, d.Reason)
	}
	// Output:
	// {"exp":1767503600,"issuer":"did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG","nonce":"nonce-for-example-1","scope":[{"actions":["query","update","drop"],"read_only":true,"tool":"db"}]
	// query ALLOWED
	// update SCOPE_MISMATCH
	// drop UNKNOWN_TOOL
}
