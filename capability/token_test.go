package capability

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

func seedWallet(t testing.TB, last byte) *identity.Wallet {
	t.Helper()
	seed := make([]byte, 32)
	seed[31] = last
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustIssue(t testing.TB, iss *identity.Wallet, sub string, grants []Grant, exp time.Time, opts IssueOptions) *Token {
	t.Helper()
	tok, err := Issue(iss.Signer(), identity.MustParseDID(sub), grants, exp, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGoldenVectors runs the library's own golden vectors
// (contracts.GoldenVectors("capability"), contracts/testdata/capability.json):
// the pinned token of the digest (seed 00..01) must be reproduced byte for
// byte by Issue, and every token of the file, pinned or tampered, is read
// with Parse and checked with Verify, whose contracts.Outcome must be the
// vector's Expect.
func TestGoldenVectors(t *testing.T) {
	vs, err := contracts.GoldenVectors("capability")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no capability golden vectors")
	}
	var pinned int
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			var in struct {
				SeedHex string `json:"seed_hex"`
				Payload *struct {
					Exp     int64   `json:"exp"`
					Issuer  string  `json:"issuer"`
					Nonce   string  `json:"nonce"`
					Scope   []Grant `json:"scope"`
					Subject string  `json:"subject"`
					Version string  `json:"version"`
				} `json:"payload"`
				Token     string `json:"token"`
				IssuerHex string `json:"issuer_public_key_hex"`
			}
			if err := json.Unmarshal(v.Input, &in); err != nil {
				t.Fatal(err)
			}
			var pub []byte
			token := in.Token
			if in.Payload != nil {
				pinned++
				var out struct {
					SigningInput   string `json:"signing_input"`
					Signature      string `json:"signature"`
					Token          string `json:"token"`
					CapabilityHash string `json:"capability_hash"`
				}
				if err := json.Unmarshal(v.Output, &out); err != nil {
					t.Fatal(err)
				}
				seed, err := hex.DecodeString(in.SeedHex)
				if err != nil {
					t.Fatal(err)
				}
				iss, err := identity.WalletFromSeed(seed)
				if err != nil {
					t.Fatal(err)
				}
				if iss.DID().String() != in.Payload.Issuer || in.Payload.Version != Version {
					t.Fatalf("issuer %s, version %s", iss.DID(), in.Payload.Version)
				}
				tok, err := Issue(iss.Signer(), identity.MustParseDID(in.Payload.Subject), in.Payload.Scope, time.Unix(in.Payload.Exp, 0), &IssueOptions{Nonce: in.Payload.Nonce})
				if err != nil {
					t.Fatal(err)
				}
				if got := string(tok.SigningInput()); got != out.SigningInput {
					t.Errorf("signing input\n got %s\nwant %s", got, out.SigningInput)
				}
				if got := contracts.EncodeBase64URL(tok.sig[:]); got != out.Signature {
					t.Errorf("signature %s, want %s", got, out.Signature)
				}
				if got := string(tok.AppendCanonical(nil)); got != out.Token {
					t.Errorf("token\n got %s\nwant %s", got, out.Token)
				}
				if tok.Hash() != out.CapabilityHash {
					t.Errorf("capability hash %s, want %s", tok.Hash(), out.CapabilityHash)
				}
				if c, err := contracts.Canonicalize([]byte(out.Token)); err != nil || string(c) != out.Token {
					t.Errorf("pinned token is not RFC 8785: %v", err)
				}
				pub, token = iss.PublicKey(), out.Token
			} else {
				if pub, err = hex.DecodeString(in.IssuerHex); err != nil {
					t.Fatal(err)
				}
			}
			if token == "" {
				t.Fatal("vector carries no token")
			}
			// Both wire forms: the JSON itself and its base64url.
			for _, wire := range []string{token, contracts.EncodeBase64URL([]byte(token))} {
				tok, err := Parse(wire)
				if err == nil {
					// Injected clock: one hour before exp, inside the window.
					err = Verify(tok, pub, tok.Expiry().Add(-time.Hour))
				}
				if errors.Is(err, ErrIssuerMismatch) {
					t.Errorf("the vector's key is not the token issuer's")
				}
				if got := contracts.Outcome(err); got != v.Expect {
					t.Errorf("outcome %s (%v), want %s", got, err, v.Expect)
				}
			}
		})
	}
	if pinned == 0 {
		t.Fatal("no pinned token among the capability golden vectors")
	}
}

func TestCapabilityVerifyVectors(t *testing.T) {
	var file struct {
		Vectors []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				IssuerSeedHex string  `json:"issuer_seed_hex"`
				SubjectDID    string  `json:"subject_did"`
				Scope         []Grant `json:"scope"`
				Exp           int64   `json:"exp"`
				Nonce         string  `json:"nonce"`
			} `json:"inputs"`
			Expected map[string]bool `json:"expected"`
		} `json:"vectors"`
		Negative []struct {
			TestID        string         `json:"test_id"`
			Inputs        map[string]any `json:"inputs"`
			ExpectedError *struct {
				Code            string `json:"code"`
				MessageContains string `json:"message_contains"`
			} `json:"expected_error"`
			Expected map[string]bool `json:"expected"`
		} `json:"negative_cases"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/sdk/capability_verify.json"), &file); err != nil {
		t.Fatal(err)
	}
	v := file.Vectors[0]
	seed, _ := hex.DecodeString(v.Inputs.IssuerSeedHex)
	iss, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(v.Inputs.Exp, 0)
	now := exp.Add(-time.Hour) // injected clock: the vector's exp is in the past today
	tok := mustIssue(t, iss, v.Inputs.SubjectDID, v.Inputs.Scope, exp, IssueOptions{Nonce: v.Inputs.Nonce})
	// Round-trip through the wire form first, as a receiver would.
	parsed, err := Parse(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got := Verify(parsed, iss.PublicKey(), now) == nil; got != v.Expected["verify"] {
		t.Fatalf("%s: verify = %v", v.TestID, got)
	}
	for k, want := range v.Expected {
		rest, ok := strings.CutPrefix(k, "authorize_fast_")
		if !ok {
			continue
		}
		tool, action, _ := strings.Cut(rest, "_")
		if got := parsed.Authorize(tool, action); got != want {
			t.Errorf("%s: authorize_fast(%s, %s) = %v, want %v", v.TestID, tool, action, got, want)
		}
	}
	for _, n := range file.Negative {
		t.Run(n.TestID, func(t *testing.T) {
			var err error
			switch {
			case n.Inputs["token_with_exp"] != nil:
				e := int64(n.Inputs["token_with_exp"].(float64))
				old := mustIssue(t, iss, v.Inputs.SubjectDID, v.Inputs.Scope, time.Unix(e, 0), IssueOptions{Nonce: v.Inputs.Nonce})
				err = Verify(old, iss.PublicKey(), now)
			case n.Inputs["tampered_token"] == true:
				raw := string(tok.AppendCanonical(nil))
				raw = strings.Replace(raw, `"write"`, `"admin"`, 1)
				bad, perr := Parse(raw)
				if perr != nil {
					t.Fatal(perr)
				}
				err = Verify(bad, iss.PublicKey(), now)
			case n.Inputs["verify_with_wrong_issuer"] == true:
				err = Verify(parsed, seedWallet(t, 2).PublicKey(), now)
			default:
				t.Fatalf("unknown negative case %v", n.Inputs)
			}
			if n.ExpectedError != nil {
				if string(contracts.CodeOf(err)) != n.ExpectedError.Code {
					t.Fatalf("code %q (%v), want %s", contracts.CodeOf(err), err, n.ExpectedError.Code)
				}
				if !strings.Contains(strings.ToLower(err.Error()), n.ExpectedError.MessageContains) {
					t.Fatalf("message %q lacks %q", err, n.ExpectedError.MessageContains)
				}
			}
			if want, ok := n.Expected["verify"]; ok && (err == nil) != want {
				t.Fatalf("verify = %v, want %v", err == nil, want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	iss := seedWallet(t, 1)
	sub := seedWallet(t, 3).DID().String()
	tok := mustIssue(t, iss, sub, []Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Unix(2000000000, 0), IssueOptions{})
	good := string(tok.AppendCanonical(nil))
	if _, err := Parse(good); err != nil {
		t.Fatalf("canonical JSON rejected: %v", err)
	}
	if _, err := Parse("  \n" + good); err != nil {
		t.Fatalf("leading white space rejected: %v", err)
	}
	mut := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	cases := map[string]string{
		"unknown field":    mut(`{"exp"`, `{"extra":1,"exp"`),
		"mis-cased field":  mut(`"exp"`, `"Exp"`),
		"duplicate key":    mut(`{"exp":2000000000`, `{"exp":2000000000,"exp":2000000000`),
		"null":             mut(`"exp":2000000000`, `"exp":null`),
		"float":            mut(`"exp":2000000000`, `"exp":2000000000.0`),
		"exponent":         mut(`"exp":2000000000`, `"exp":2e9`),
		"huge int":         mut(`"exp":2000000000`, `"exp":90071992547409930`),
		"version":          mut(`"1.0"`, `"1.1"`),
		"bad did":          mut(`"issuer":"did:key:z`, `"issuer":"did:web:z`),
		"short nonce":      mut(`"nonce":"`+tok.Nonce()+`"`, `"nonce":"123456789012345"`),
		"padded signature": mut(`","subject"`, `=","subject"`),
		"trailing":         good + "{}",
		"grant extra":      mut(`"tool":"fs"`, `"tool":"fs","x":1`),
		"metadata array":   mut(`,"nonce"`, `,"metadata":[],"nonce"`),
		"metadata null":    mut(`,"nonce"`, `,"metadata":{"a":null},"nonce"`),
		"aud not string":   mut(`,"nonce"`, `,"metadata":{"aud":1},"nonce"`),
		"base64 padding":   tok.Encode() + "=",
		"too big":          strings.Repeat(" ", MaxTokenSize+1),
		"lone surrogate":   mut(`"tool":"fs"`, `"tool":"\ud800"`),
		"missing field":    mut(`,"nonce":"`+tok.Nonce()+`"`, ``),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(in)
			if err == nil {
				t.Fatalf("accepted %s", in)
			}
			if !errors.Is(err, contracts.ErrInvalidCapability) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not TALOS_INVALID_CAPABILITY/ErrMalformed", err)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	iss := seedWallet(t, 1)
	sub := seedWallet(t, 3).DID().String()
	tok := mustIssue(t, iss, sub, []Grant{{Tool: "fs \"x\"\n", Actions: []string{"read", "ü"}}, {Tool: "net", Actions: []string{"get"}}},
		time.Unix(2000000000, 0), IssueOptions{NotBefore: time.Unix(1000, 0), Audience: "svc", ReadOnly: true, Metadata: map[string]any{"team": "a"}})
	p, err := Parse(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() != tok.Hash() || p.Audience() != "svc" || !p.ReadOnly() || p.Encode() != tok.Encode() {
		t.Fatalf("round trip changed the token")
	}
	if err := Verify(p, iss.PublicKey(), time.Unix(1500, 0)); err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, iss.PublicKey(), time.Unix(900, 0)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("before nbf: %v", err)
	}
	if err := Verify(p, iss.PublicKey(), time.Unix(1000-60, 0)); err != nil {
		t.Fatalf("within skew of nbf: %v", err)
	}
	if err := Verify(p, iss.PublicKey(), time.Unix(2000000060, 0)); err != nil {
		t.Fatalf("within skew of exp: %v", err)
	}
	if err := Verify(p, iss.PublicKey(), time.Unix(2000000061, 0)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after exp+skew: %v", err)
	}
	if _, err := Issue(iss.Signer(), identity.MustParseDID(sub), nil, time.Unix(2000000000, 0), nil); err == nil {
		t.Fatal("issued a token without grants")
	}
	if _, err := Issue(iss.Signer(), identity.MustParseDID(sub), []Grant{{Tool: "a", Actions: []string{"b"}}}, time.Unix(2000000000, 0), &IssueOptions{Metadata: map[string]any{"parent": "x"}}); err == nil {
		t.Fatal("issued a token with reserved metadata")
	}
}

// TestDecodeB64MatchesContracts checks the fast decoder against
// contracts.DecodeBase64URL on the contract's base64url vectors and on
// edge cases.
func TestDecodeB64MatchesContracts(t *testing.T) {
	for _, s := range []string{"", "Zg", "Zm8", "Zm9v", "aGVsbG8", "Zg==", "Zm8=", "Zm9v=", "aGVsbG8=", "Zm+v", "Zm/v",
		"Zg=", "A", "==", "Zg==Zg", "Zm9v\n", "Zm9v ", "Zm9v\r", "\nZm9v", "Zh", "Zm9vYg", "Zm9vYh", "Zm\n9v", "_-_-"} {
		want, werr := contracts.DecodeBase64URL(s)
		got, ok := decodeB64(s)
		if ok != (werr == nil) || (ok && string(got) != string(want)) {
			t.Errorf("%q: ok=%v (%x), contracts err=%v (%x)", s, ok, got, werr, want)
		}
	}
}

// TestMetadataFastPath checks that the fast path for reserved-only
// metadata produces exactly what the general (jcs) path produces.
func TestMetadataFastPath(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, in := range []string{
		`{"aud":"svc"}`, `{"parent":"` + h + `","aud":"s\u00e9rvice\n"}`, `{ "read_only" : false , "aud":"a"}`,
		`{"read_only":true,"parent":"` + h + `"}`, `{}`, `{"aud":"x\u2028y\"z"}`,
	} {
		var fast, slow Token
		if !reservedMetadataOnly(&fast, []byte(in)) {
			t.Errorf("%s: fast path refused", in)
			continue
		}
		sc := scanner{b: []byte(in)}
		if !parseMetadata(&sc, &slow, []byte(in)) {
			t.Fatalf("%s: %s", in, sc.err)
		}
		c, err := contracts.CanonicalizeStrict([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if string(fast.metadata) != string(c) || fast.aud != slow.aud || fast.parent != slow.parent || fast.readOnly != slow.readOnly {
			t.Errorf("%s: fast %s, canonical %s", in, fast.metadata, c)
		}
	}
	for _, in := range []string{`{"aud":1}`, `{"aud":""}`, `{"parent":"xyz"}`, `{"aud":"a","aud":"b"}`, `{"x":1}`, `{"read_only":"yes"}`} {
		var tok Token
		if reservedMetadataOnly(&tok, []byte(in)) {
			t.Errorf("%s: fast path accepted", in)
		}
	}
}
