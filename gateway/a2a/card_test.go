package a2a

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/talosgo/talos/identity"
)

func testCard() AgentCard {
	return AgentCard{Name: "Talos Go agent", Description: "An attested A2A v1 agent", Version: "0.1.0",
		Organization: "Talos for Go", OrganizationURL: "https://example.com", DocumentationURL: "https://example.com/docs",
		RPCURL: "https://agent.example.com/rpc", Streaming: true, PushNotifications: true,
		Skills: []AgentSkill{{ID: "echo", Name: "Echo", Description: "Echoes text", Tags: []string{"demo"}}}}
}

// TestAgentCardContract: the v1 card matches schemas/a2a/v1/agent_card;
// the served public card matches schemas/a2a/agent_card (profile, auth,
// x_talos) and, without the legacy members and signatures, the v1 schema;
// its signature verifies with the did:key in x_talos.
func TestAgentCardContract(t *testing.T) {
	w, _ := identity.GenerateWallet("card")
	c := testCard()
	v1, err := c.V1()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, "a2a/v1/agent_card.schema.json", v1); err != nil {
		t.Fatalf("v1 card: %v", err)
	}
	sc, err := c.Sign(w.Signer())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(CardHandler(sc))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/.well-known/agent-card.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := validate(t, "a2a/agent_card.schema.json", body); err != nil {
		t.Fatalf("public card vs legacy schema: %v", err)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	var xt struct {
		PublicKey string `json:"public_key"`
	}
	_ = json.Unmarshal(m["x_talos"], &xt)
	did, err := identity.ParseDID(xt.PublicKey)
	if err != nil || did != w.DID() {
		t.Fatalf("x_talos.public_key %q", xt.PublicKey)
	}
	card, err := VerifyAgentCard(body, did)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"profile", "auth", "x_talos"} {
		delete(card, k)
	}
	stripped, _ := json.Marshal(card)
	if err := validate(t, "a2a/v1/agent_card.schema.json", stripped); err != nil {
		t.Fatalf("public card's v1 part: %v", err)
	}
	// Changing any member, or dropping the signatures, fails.
	m["name"] = json.RawMessage(`"Mallory"`)
	bad, _ := json.Marshal(m)
	if _, err := VerifyAgentCard(bad, did); err == nil {
		t.Fatal("altered card verified")
	}
	delete(m, "signatures")
	m["name"] = json.RawMessage(`"Talos Go agent"`)
	unsigned, _ := json.Marshal(m)
	if _, err := VerifyAgentCard(unsigned, did); err == nil {
		t.Fatal("unsigned card verified")
	}
	if resp, _ := http.Post(srv.URL, "application/json", nil); resp.StatusCode < 400 {
		t.Fatalf("POST to the card: %d", resp.StatusCode)
	}
	if _, err := (AgentCard{Name: "x"}).V1(); err == nil {
		t.Fatal("incomplete card accepted")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}`, `{"jsonrpc":"2.0","id":"a","method":"m","Method":"n"}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"x"}`, `[]`, `{"jsonrpc":"2.0","id":null,"method":"x"}`, `{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, perr := parseEnvelope(b)
		if perr == nil && (req.JSONRPC != "2.0" || req.Method == "" || len(req.ID) == 0 || req.Params[0] != '{') {
			t.Fatalf("accepted bad envelope %q", b)
		}
		if perr != nil && perr.Code > -32600 && perr.Code != RPCInvalidParams {
			t.Fatalf("code %d", perr.Code)
		}
	})
}

func FuzzVerifyAgentCard(f *testing.F) {
	w, _ := identity.GenerateWallet("fuzz")
	sc, err := testCard().Sign(w.Signer())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(sc.JSON()))
	f.Add([]byte(`{"signatures":[{"protected":"e30","signature":"AA"}]}`))
	f.Add([]byte(`{"a":1,"A":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := VerifyAgentCard(b, w.DID()); err == nil {
			// Only documents signed by w verify: the seed, or ones with the
			// same canonical payload.
			p1, _, _ := cardPayload(b)
			p2, _, _ := cardPayload(sc.JSON())
			if string(p1) != string(p2) {
				t.Fatalf("forged card verified: %q", b)
			}
		}
	})
}
