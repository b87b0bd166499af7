package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/identity"
)

// A log signed by an identity wallet: append an event, sign a checkpoint,
// and verify an inclusion proof with only the public verifier key.
func Example() {
	ctx := context.Background()
	wallet, err := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}
	const origin = "audit.example.com/log"
	signer, err := audit.NewNoteSigner(origin, wallet.Signer())
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := audit.NewVerifier(origin, wallet.PublicKey())
	if err != nil {
		log.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}

	builder, err := audit.NewEventBuilder(audit.BuilderConfig{
		MetaAllowlist: map[string][]string{"llm.invoke": {"model"}},
		Now:           func() time.Time { return time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC) },
		NewID:         func() string { return "01945533-3158-7c85-992d-9865f1715694" },
	})
	if err != nil {
		log.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	ev, err := builder.Build(req, audit.Decision{
		RequestID: "req-1", SurfaceID: "llm.invoke", TemplatePath: "/v1/chat/completions", Status: 200,
		Principal: audit.BearerPrincipal("p-1", "t-1"),
		Meta:      map[string]any{"model": "gpt-4", "api_key": "sk-secret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	receipt, err := l.Append(ctx, ev)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	proof, err := l.InclusionProof(ctx, receipt.Index, cp.Size)
	if err != nil {
		log.Fatal(err)
	}

	// A client holding only the verifier key text checks everything.
	vkey, _ := audit.VerifierKey(origin, wallet.PublicKey())
	got, err := audit.VerifyCheckpoint(cp.Note, vkey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("size:", got.Size)
	fmt.Println("included:", audit.VerifyInclusion(proof, got, receipt.Index, receipt.LeafHash) == nil)
	fmt.Println("meta:", ev.Meta)
	// Output:
	// size: 1
	// included: true
	// meta: map[meta_redacted_keys:api_key meta_redaction_applied:true model:gpt-4]
}

// The hash chain of A2A session events: each event's previous_digest is
// the event_digest of the one before.
func ExampleChain() {
	c := audit.NewChain(audit.SessionEventChain)
	for _, typ := range []string{"session_opened", "session_accepted"} {
		sealed, digest, err := c.Seal(map[string]any{
			"schema_id": "talos.a2a.session_event", "schema_version": "v1",
			"event_id": "01945533-3158-7c85-992d-9865f1715694", "session_id": "01945533-3158-7c85-992d-9865f1715600",
			"actor_id": "alice", "event_type": typ, "ts": "2026-01-11T18:00:00.000Z",
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(sealed) > 0, len(digest), c.Len())
	}
	// Output:
	// true 64 1
	// true 64 2
}

// ChainDigest is the digest rule alone.
func ExampleChainDigest() {
	d, err := audit.ChainDigest([]byte(`{"b":2,"a":1,"event_digest":"ignored"}`), "event_digest")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d) // sha256(`{"a":1,"b":2}`)
	// Output: 43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777
}

// An event that goes straight to a log is drafted, not built: the log
// validates and seals it, once.
func ExampleEventBuilder_Draft() {
	ctx := context.Background()
	wallet, err := identity.WalletFromSeed(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		log.Fatal(err)
	}
	signer, err := audit.NewNoteSigner("audit.example.com/log", wallet.Signer())
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := audit.NewVerifier("audit.example.com/log", wallet.PublicKey())
	if err != nil {
		log.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	builder, err := audit.NewEventBuilder(audit.BuilderConfig{
		Now:   func() time.Time { return time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC) },
		NewID: func() string { return "01945533-3158-7c85-992d-9865f1715694" },
	})
	if err != nil {
		log.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/authorize", nil)
	ev, err := builder.Draft(r, audit.Decision{RequestID: "req-1", SurfaceID: "kernel.authorize",
		TemplatePath: "/v1/authorize", Status: 200, Principal: audit.AnonymousPrincipal()})
	if err != nil {
		log.Fatal(err)
	}
	rc, err := l.Append(ctx, ev)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.EventHash == "", rc.Index, len(rc.EventHash))
	// Output:
	// true 0 64
}
