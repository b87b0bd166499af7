package capability

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

// TestOutputsMatchContractSchemas validates what this package writes
// against the embedded contract schemas.
func TestOutputsMatchContractSchemas(t *testing.T) {
	ws := wallets(t, 3)
	for name, opts := range map[string]IssueOptions{
		"plain": {},
		"full":  {NotBefore: testNow, Audience: "svc", ReadOnly: true, Metadata: map[string]any{"team": "a"}},
	} {
		tok := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, opts)
		if err := contracts.Validate("capability_token", tok.AppendCanonical(nil)); err != nil {
			t.Errorf("%s token: %v", name, err)
		}
	}
	c := buildChain(t, ws, []Grant{{Tool: "fs", Actions: []string{"read"}}}, IssueOptions{})
	for i, link := range c {
		if err := contracts.Validate("capability_token", link.AppendCanonical(nil)); err != nil {
			t.Errorf("chain link %d: %v", i, err)
		}
	}
	f, err := SignMCPRequest(ws[0].Signer(), json.RawMessage(`{"method":"tools/call"}`), "s", "c", "fs", "read", time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	if err := contracts.Validate("mcp_payload", f.PayloadBytes); err != nil {
		t.Errorf("mcp payload: %v", err)
	}
}
