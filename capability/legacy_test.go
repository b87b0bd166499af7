package capability

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// legacyToken signs a legacy token the way the TS SDK does:
// sig = Ed25519(canonical(cap − sig)).
func legacyToken(t testing.TB, w *identity.Wallet, iss, scope, constraints string, iat, exp int64, enc *base64.Encoding) string {
	t.Helper()
	body := `"exp":` + strconv.FormatInt(exp, 10) + `,"iat":` + strconv.FormatInt(iat, 10) +
		`,"iss":"` + iss + `","scope":"` + scope + `","sub":"` + w.DID().String() + `","v":"1"`
	if constraints != "" {
		body = `"constraints":` + constraints + `,` + body
	}
	payload := "{" + body + "}"
	canon, err := contracts.CanonicalizeStrict([]byte(payload))
	if err != nil || string(canon) != payload {
		t.Fatalf("test payload not canonical: %v\n%s\n%s", err, canon, payload)
	}
	sig := enc.EncodeToString(w.Sign(canon))
	return `{"sig":"` + sig + `",` + body + `}`
}

func TestLegacyTokens(t *testing.T) {
	w := seedWallet(t, 7)
	hexIss := "did:talos:" + hex.EncodeToString(w.PublicKey())
	now := time.Unix(1700000000, 0)
	raw := legacyToken(t, w, hexIss, "tool:filesystem", `{"method":"read","paths":["/data/*"]}`, now.Unix(), now.Unix()+3600, base64.StdEncoding)
	tok, err := ParseLegacy(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyLegacy(tok, now); err != nil {
		t.Fatal(err)
	}
	if canon, err := contracts.Canonicalize([]byte(raw)); err != nil || string(canon) != string(tok.AppendCanonical(nil)) || len(tok.Hash()) != 64 {
		t.Fatalf("canonical form:\n%s\n%s (%v)", canon, tok.AppendCanonical(nil), err)
	}
	for _, c := range []struct {
		tool, method, path string
		want               bool
	}{
		{"filesystem", "read", "/data/a.txt", true},
		{"filesystem", "read", "/etc/passwd", false},
		{"filesystem", "write", "/data/a.txt", false},
		{"network", "read", "/data/a.txt", false},
		{"filesystem", "read", "", false},
		{"", "read", "/data/a", false},
	} {
		if got := tok.Authorize(c.tool, c.method, c.path); got != c.want {
			t.Errorf("Authorize(%q, %q, %q) = %v", c.tool, c.method, c.path, got)
		}
	}
	// did:key issuer, wildcard scope, base64url signature, base64 wire form.
	raw2 := legacyToken(t, w, w.DID().String(), "tool:*/method:read", "", now.Unix(), now.Unix()+3600, base64.RawURLEncoding)
	tok2, err := ParseLegacy(contracts.EncodeBase64URL([]byte(raw2)))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyLegacy(tok2, now); err != nil {
		t.Fatal(err)
	}
	if !tok2.Authorize("anything", "read", "") || tok2.Authorize("anything", "write", "") {
		t.Fatal("wildcard scope")
	}
	if !tok2.CoversScope("tool:x/method:read/extra") || tok2.CoversScope("tool:x") {
		t.Fatal("segment prefix rule")
	}
	// Expired, future iat, bad signature, wrong issuer key.
	if err := VerifyLegacy(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := VerifyLegacy(tok, now.Add(-2*time.Minute)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("future iat: %v", err)
	}
	other := seedWallet(t, 8)
	forged := legacyToken(t, other, hexIss, "tool:filesystem", "", now.Unix(), now.Unix()+3600, base64.StdEncoding)
	ft, err := ParseLegacy(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyLegacy(ft, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: %v", err)
	}
	// Unknown constraints deny; unknown fields, null and floats are rejected.
	unk := legacyToken(t, w, hexIss, "tool:filesystem", `{"rate":5}`, now.Unix(), now.Unix()+3600, base64.StdEncoding)
	ut, err := ParseLegacy(unk)
	if err != nil {
		t.Fatal(err)
	}
	if ut.Authorize("filesystem", "read", "") {
		t.Fatal("unknown constraint ignored")
	}
	for name, in := range map[string]string{
		"extra":    strings.Replace(raw, `"v":"1"`, `"v":"1","x":1`, 1),
		"version":  strings.Replace(raw, `"v":"1"`, `"v":"2"`, 1),
		"float":    strings.Replace(raw, `"iat":`, `"iat":1.5,"q":`, 1),
		"dup":      strings.Replace(raw, `"v":"1"`, `"v":"1","v":"1"`, 1),
		"bad did":  strings.Replace(raw, "did:talos:", "did:talos:zz", 1),
		"null":     strings.Replace(raw, `"method":"read"`, `"method":null`, 1),
		"paths":    strings.Replace(raw, `["/data/*"]`, `"/data/*"`, 1),
		"too long": strings.Repeat(" ", MaxLegacyTokenSize+1),
	} {
		if _, err := ParseLegacy(in); !errors.Is(err, contracts.ErrInvalidCapability) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A legacy token never passes the contract parser.
	if _, err := Parse(raw); err == nil {
		t.Fatal("Parse accepted a legacy token")
	}
}
