package capability_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// TestTokenLogValue: a token logged with slog shows its hash, parties and
// grants, and neither its signature nor its encoding.
func TestTokenLogValue(t *testing.T) {
	iss, _ := identity.GenerateWallet("iss")
	sub, _ := identity.GenerateWallet("sub")
	tok, err := capability.Issue(iss.Signer(), sub.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("issued", "token", tok)
	out := buf.String()
	for _, want := range []string{tok.Hash(), iss.DID().String(), sub.DID().String(), "fs:read"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
	enc := tok.Encode()
	if strings.Contains(out, enc[len(enc)-40:]) || strings.Contains(out, "signature") {
		t.Fatalf("log leaks the token: %s", out)
	}
}
