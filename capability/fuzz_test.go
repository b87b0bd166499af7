package capability

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

func fuzzSeeds(f *testing.F) (*identity.Wallet, []string) {
	iss := seedWallet(f, 1)
	sub := seedWallet(f, 3).DID().String()
	a := mustIssue(f, iss, sub, []Grant{{Tool: "fs", Actions: []string{"read", "write"}}}, testExp, IssueOptions{Nonce: "unique-nonce-12345678"})
	b := mustIssue(f, iss, sub, []Grant{{Tool: "a\"\\\u00e9", Actions: []string{"x"}}, {Tool: "b", Actions: []string{"y", "z"}}}, testExp,
		IssueOptions{NotBefore: testNow, Audience: "svc", ReadOnly: true, Metadata: map[string]any{"k": []any{1, "two", map[string]any{"x": true}}}})
	c := mustIssue(f, iss, sub, []Grant{{Tool: "fs", Actions: []string{"read"}, ReadOnly: true}, {Tool: "db", Actions: []string{"q"}}}, testExp, IssueOptions{})
	return iss, []string{a.Encode(), string(a.AppendCanonical(nil)), b.Encode(), string(b.AppendCanonical(nil)), string(c.AppendCanonical(nil)),
		`{"version":"1.0"}`, "", "e30", "[]",
		// Negative zero (issue 10): refused wherever a number appears.
		strings.Replace(string(a.AppendCanonical(nil)), `"exp":`, `"exp":-0,"x":`, 1),
		strings.Replace(string(b.AppendCanonical(nil)), `[1,`, `[-0,`, 1)}
}

// FuzzParse: an accepted token's canonical re-encoding parses to the same
// token (same hash, same signed bytes) and verifies identically; a
// rejected one is a TALOS_INVALID_CAPABILITY error.
func FuzzParse(f *testing.F) {
	iss, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	pub := iss.PublicKey()
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidCapability) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		again, err := Parse(tok.Encode())
		if err != nil {
			t.Fatalf("canonical re-encoding rejected: %v", err)
		}
		if again.Hash() != tok.Hash() || string(again.payload) != string(tok.payload) {
			t.Fatal("re-encoding changed the token")
		}
		raw, err := Parse(string(tok.AppendCanonical(nil)))
		if err != nil || raw.Hash() != tok.Hash() {
			t.Fatalf("canonical JSON form: %v", err)
		}
		if c, err := contracts.CanonicalizeStrict(tok.AppendCanonical(nil)); err != nil || string(c) != string(tok.AppendCanonical(nil)) {
			t.Fatalf("AppendCanonical is not canonical: %v", err)
		}
		e1, e2 := Verify(tok, pub, testNow), Verify(again, pub, testNow)
		if (e1 == nil) != (e2 == nil) || contracts.CodeOf(e1) != contracts.CodeOf(e2) {
			t.Fatalf("verification differs: %v vs %v", e1, e2)
		}
	})
}

// FuzzParseChain: an accepted chain re-encodes to a chain of the same
// tokens that verifies identically.
func FuzzParseChain(f *testing.F) {
	iss, seeds := fuzzSeeds(f)
	ws := wallets(f, 4)
	c := buildChain(f, ws, []Grant{{Tool: "fs", Actions: []string{"read"}}}, IssueOptions{})
	seeds = append(seeds, c.Encode(), "["+string(c[0].AppendCanonical(nil))+"]")
	for _, s := range seeds {
		f.Add(s)
	}
	trusted := []identity.DID{ws[0].DID(), iss.DID()}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChain(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidCapability) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if len(c) == 0 || len(c) > MaxChainDepth {
			t.Fatalf("accepted a chain of %d", len(c))
		}
		again, err := ParseChain(c.Encode())
		if err != nil || len(again) != len(c) {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		for i := range c {
			if again[i].Hash() != c[i].Hash() {
				t.Fatalf("link %d changed", i)
			}
		}
		e1, e2 := VerifyChain(c, trusted, testNow), VerifyChain(again, trusted, testNow)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("verification differs: %v vs %v", e1, e2)
		}
	})
}

// FuzzParseLegacy: an accepted legacy token's canonical form parses to the
// same signed bytes and verifies identically.
func FuzzParseLegacy(f *testing.F) {
	w := seedWallet(f, 7)
	now := time.Unix(1700000000, 0)
	lt := func(iss, cons string, enc *base64.Encoding) string {
		return legacyToken(f, w, iss, "tool:filesystem", cons, now.Unix(), now.Unix()+3600, enc)
	}
	f.Add(lt("did:talos:"+hex.EncodeToString(w.PublicKey()), `{"method":"read","paths":["/data/*"]}`, base64.StdEncoding))
	f.Add(lt(w.DID().String(), "", base64.RawURLEncoding))
	f.Add(`{"v":"1"}`)
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseLegacy(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidCapability) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		again, err := ParseLegacy(string(tok.AppendCanonical(nil)))
		if err != nil {
			t.Fatalf("canonical form rejected: %v", err)
		}
		if string(again.payload) != string(tok.payload) || again.Hash() != tok.Hash() {
			t.Fatal("re-encoding changed the token")
		}
		if c, err := contracts.Canonicalize(tok.AppendCanonical(nil)); err != nil || string(c) != string(tok.AppendCanonical(nil)) {
			t.Fatalf("AppendCanonical is not canonical: %v", err)
		}
		e1, e2 := VerifyLegacy(tok, now), VerifyLegacy(again, now)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("verification differs: %v vs %v", e1, e2)
		}
		if again.Authorize("filesystem", "read", "/data/x") != tok.Authorize("filesystem", "read", "/data/x") {
			t.Fatal("authorization differs")
		}
	})
}

// FuzzParseMCPPayload: accepted payload bytes are exactly the canonical
// encoding of the parsed payload, so a signature covers one meaning.
func FuzzParseMCPPayload(f *testing.F) {
	w := seedWallet(f, 1)
	fr, err := SignMCPRequest(w.Signer(), []byte(`{"method":"read","params":{"path":"/data","n":[1,2]}}`), "s", "c", "t", "a", 1767500000)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fr.PayloadBytes)
	f.Add([]byte(`{"action":"a","correlation_id":"c","request":{},"session_id":"s","timestamp":1,"tool":"t"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseMCPPayload(b)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		again, err := contracts.MarshalStrict(p)
		if err != nil || string(again) != string(b) {
			t.Fatalf("accepted bytes are not the payload's canonical form:\n in  %s\n out %s (%v)", b, again, err)
		}
	})
}

// FuzzParseToolRegistry: never panics; an accepted registry answers
// lookups for every entry it was built from.
func FuzzParseToolRegistry(f *testing.F) {
	f.Add([]byte(`{"registry_version":"1.0.0","tools":[{"tool_server":"a","tool_name":"b","tool_class":"read","requires_idempotency_key":false}]}`))
	f.Add([]byte(`{"schema_id":"talos.mcp.tool_registry","schema_version":"v1","server_id":"s","tools":[{"tool_name":"w","tool_class":"write","requires_idempotency_key":true,"is_document_op":true,"document_spec":{"write_content_pointers":["/a"],"content_encoding":"utf8"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseToolRegistry(b)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		n := 0
		for tool, m := range r.tools {
			for action, e := range m {
				if got, ok := r.Lookup(tool, action); !ok || got.Class != e.Class || (e.Class == ClassWrite && !e.RequiresIdempotencyKey) {
					t.Fatalf("entry %s/%s", tool, action)
				}
				n++
			}
		}
		if n != r.Len() {
			t.Fatalf("Len %d, entries %d", r.Len(), n)
		}
	})
}

// FuzzDecodeB64: the package's fast strict base64url decoder accepts
// exactly what contracts.DecodeBase64URL accepts, with the same bytes.
func FuzzDecodeB64(f *testing.F) {
	for _, s := range []string{"", "Zg", "Zm9v", "Zg==", "Zm9v\n", "Zh", "A", "_-_-", "Zm9v\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := contracts.DecodeBase64URL(s)
		got, ok := decodeB64(s)
		if ok != (werr == nil) || (ok && string(got) != string(want)) {
			t.Fatalf("%q: ok=%v, contracts: %v", s, ok, werr)
		}
	})
}
