package a2a

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	a2ago "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestInteropA2AGoCardResolver: the independent a2a-go client (v0.3.3,
// github.com/a2aproject/a2a-go) resolves our signed card from
// /.well-known/agent-card.json and reads its fields and the JWS signature
// in the A2A AgentCardSignature shape (protected header EdDSA with our
// did:key as kid). a2a-go has no signature verification of its own, so the
// signature it read is checked with ours against the card it fetched.
func TestInteropA2AGoCardResolver(t *testing.T) {
	w, _ := identity.GenerateWallet("interop")
	sc, err := testCard().Sign(w.Signer())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/agent-card.json", CardHandler(sc))
	mux.Handle("GET /.well-known/agent.json", CardHandler(sc))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/.well-known/agent-card.json", "/.well-known/agent.json"} {
		card, err := agentcard.NewResolver(srv.Client()).Resolve(context.Background(), srv.URL, agentcard.WithPath(path))
		if err != nil {
			t.Fatalf("%s: a2a-go resolver: %v", path, err)
		}
		want := testCard()
		if card.Name != want.Name || card.Description != want.Description || card.Version != want.Version ||
			card.Provider == nil || card.Provider.Org != want.Organization || card.DocumentationURL != want.DocumentationURL ||
			!card.Capabilities.Streaming || !card.Capabilities.PushNotifications || len(card.Skills) != 1 || card.Skills[0].ID != "echo" {
			t.Fatalf("%s: a2a-go read %+v", path, card)
		}
		if len(card.Signatures) != 1 {
			t.Fatalf("%s: a2a-go read %d signatures", path, len(card.Signatures))
		}
		sig := card.Signatures[0]
		hb, err := contracts.DecodeBase64URL(sig.Protected)
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]string
		if err := json.Unmarshal(hb, &h); err != nil || h["alg"] != "EdDSA" || h["kid"] != w.DID().String() {
			t.Fatalf("protected header %s", hb)
		}
		// The signature a2a-go parsed, put back on the fetched card, verifies.
		var doc map[string]any
		_ = json.Unmarshal(sc.JSON(), &doc)
		doc["signatures"] = []a2ago.AgentCardSignature{sig}
		b, _ := json.Marshal(doc)
		if _, err := VerifyAgentCard(b, w.DID()); err != nil {
			t.Fatalf("signature read by a2a-go: %v", err)
		}
	}
}
