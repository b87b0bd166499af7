package capability

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Issue 10 item 6: -0 is a second spelling of 0. Every integer the
// capability readers take from outside bytes (token exp/nbf, numbers inside
// metadata, legacy iat/exp/constraints, MCP frame timestamps) must refuse
// it like any other non-canonical number, with a typed error.
func TestNegativeZeroRefused(t *testing.T) {
	iss := seedWallet(t, 1)
	sub := seedWallet(t, 3).DID().String()
	tok := mustIssue(t, iss, sub, []Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Unix(2000000000, 0),
		IssueOptions{NotBefore: time.Unix(1000000000, 0), Metadata: map[string]any{"n": 0, "l": []any{0}}})
	good := string(tok.AppendCanonical(nil))
	if _, err := Parse(good); err != nil {
		t.Fatalf("canonical token rejected: %v", err)
	}
	for name, in := range map[string]string{
		"exp":            strings.Replace(good, `"exp":2000000000`, `"exp":-0`, 1),
		"nbf":            strings.Replace(good, `"nbf":1000000000`, `"nbf":-0`, 1),
		"metadata":       strings.Replace(good, `"n":0`, `"n":-0`, 1),
		"metadata array": strings.Replace(good, `"l":[0]`, `"l":[-0]`, 1),
	} {
		if in == good {
			t.Fatalf("%s: mutation did not apply to %s", name, good)
		}
		_, err := Parse(in)
		if !errors.Is(err, contracts.ErrInvalidCapability) || !errors.Is(err, ErrMalformed) {
			t.Errorf("token with %s -0: error %v, want TALOS_INVALID_CAPABILITY/ErrMalformed", name, err)
		}
		if _, err := ParseChain(base64.RawURLEncoding.EncodeToString([]byte(in))); err == nil {
			t.Errorf("chain with %s -0 accepted", name)
		}
	}
	// Negative numbers other than -0 are still numbers in metadata.
	neg := strings.Replace(good, `"n":0`, `"n":-1`, 1)
	if _, err := Parse(neg); errors.Is(err, ErrMalformed) && strings.Contains(err.Error(), "zero") {
		t.Fatalf("-1 refused as negative zero: %v", err)
	}

	w := seedWallet(t, 7)
	hexIss := "did:talos:" + hex.EncodeToString(w.PublicKey())
	legacy := legacyToken(t, w, hexIss, "tool:filesystem", `{"max":0}`, 1700000000, 1700003600, base64.StdEncoding)
	if _, err := ParseLegacy(legacy); err != nil {
		t.Fatalf("legacy token rejected: %v", err)
	}
	for name, in := range map[string]string{
		"legacy iat":         strings.Replace(legacy, `"iat":1700000000`, `"iat":-0`, 1),
		"legacy exp":         strings.Replace(legacy, `"exp":1700003600`, `"exp":-0`, 1),
		"legacy constraints": strings.Replace(legacy, `"max":0`, `"max":-0`, 1),
	} {
		if in == legacy {
			t.Fatalf("%s: mutation did not apply", name)
		}
		_, err := ParseLegacy(in)
		var ce *contracts.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s -0: error %v, want a *contracts.Error", name, err)
		}
	}

	f, err := SignMCPRequest(w.Signer(), []byte(`{"n":0}`), "sess-1", "corr-1", "fs", "read", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseMCPPayload(f.PayloadBytes); err != nil {
		t.Fatalf("MCP payload rejected: %v", err)
	}
	for name, old := range map[string]string{"timestamp": `"timestamp":0`, "request": `"n":0`} {
		in := strings.Replace(string(f.PayloadBytes), old, strings.Replace(old, "0", "-0", 1), 1)
		if in == string(f.PayloadBytes) {
			t.Fatalf("MCP %s: mutation did not apply to %s", name, f.PayloadBytes)
		}
		_, err := ParseMCPPayload([]byte(in))
		var ce *contracts.Error
		if !errors.As(err, &ce) {
			t.Errorf("MCP %s -0: error %v, want a *contracts.Error", name, err)
		}
	}
}
