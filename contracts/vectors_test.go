package contracts_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"
	"github.com/talosgo/talos/contracts"
)

// golden loads a golden vector file and fails the test when it is empty.
func golden(t *testing.T, name string) []contracts.Vector {
	t.Helper()
	vs, err := contracts.GoldenVectors(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatalf("golden file %s has no vectors", name)
	}
	return vs
}

func decodeInto(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("vector field %s: %v", raw, err)
	}
}

func TestGoldenLoader(t *testing.T) {
	names := contracts.GoldenNames()
	want := []string{"base64url", "canonical_json", "capability", "cursor", "frame", "identity", "uuidv7"}
	if !slices.Equal(names, want) {
		t.Errorf("GoldenNames() = %v, want %v", names, want)
	}
	for _, name := range names {
		vs := golden(t, name)
		seen := map[string]bool{}
		for _, v := range vs {
			if v.Name == "" || v.Source == "" || v.Expect == "" || len(v.Input) == 0 {
				t.Errorf("%s: incomplete vector %+v", name, v)
			}
			if seen[v.Name] {
				t.Errorf("%s: duplicate vector name %q", name, v.Name)
			}
			seen[v.Name] = true
			if v.Expect == contracts.OutcomeOK && len(v.Output) == 0 && name != "canonical_json" {
				t.Errorf("%s/%s: ok vector without output", name, v.Name)
			}
		}
		raw, err := fs.ReadFile(contracts.GoldenFS(), name+".json")
		if err != nil {
			t.Fatal(err)
		}
		if direct, _ := contracts.Golden(name); !bytes.Equal(raw, direct) {
			t.Errorf("GoldenFS and Golden disagree on %s", name)
		}
	}
	for _, bad := range []string{"", "nope", "../errors", "testdata/frame", "frame.json", `a\b`} {
		if _, err := contracts.GoldenVectors(bad); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Errorf("GoldenVectors(%q): %v, want %s", bad, err, contracts.CodeNotFound)
		}
	}
	// Callers get their own copies.
	a, _ := contracts.GoldenVectors("frame")
	a[0].Input[0] = 'X'
	b, _ := contracts.GoldenVectors("frame")
	if b[0].Input[0] == 'X' {
		t.Error("GoldenVectors returned shared memory")
	}
	if contracts.Outcome(nil) != "ok" || contracts.Outcome(contracts.ErrFrameInvalid) != string(contracts.CodeFrameInvalid) {
		t.Error("Outcome mapping")
	}
}

func TestGoldenCanonicalJSON(t *testing.T) {
	for _, v := range golden(t, "canonical_json") {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var in struct {
				JSON    *string `json:"json"`
				JSONHex string  `json:"json_hex"`
				Strict  bool    `json:"strict"`
			}
			decodeInto(t, v.Input, &in)
			raw := []byte(nil)
			if in.JSON != nil {
				raw = []byte(*in.JSON)
			} else {
				var err error
				if raw, err = hex.DecodeString(in.JSONHex); err != nil {
					t.Fatal(err)
				}
			}
			canon := contracts.Canonicalize
			if in.Strict {
				canon = contracts.CanonicalizeStrict
			}
			got, err := canon(raw)
			if o := contracts.Outcome(err); o != v.Expect {
				t.Fatalf("outcome %s (%v), want %s (source: %s)", o, err, v.Expect, v.Source)
			}
			if cerr := contracts.CheckJSON(raw, in.Strict); contracts.Outcome(cerr) != v.Expect {
				t.Errorf("CheckJSON outcome %s, want %s", contracts.Outcome(cerr), v.Expect)
			}
			if err != nil {
				if got != nil {
					t.Errorf("output %q with an error", got)
				}
				return
			}
			var out struct {
				Canonical string `json:"canonical"`
			}
			decodeInto(t, v.Output, &out)
			if string(got) != out.Canonical {
				t.Errorf("got  %q\nwant %q", got, out.Canonical)
			}
			// Every accepted input agrees with the reference RFC 8785
			// implementation, and canonical output is a fixed point.
			if ref, err := jcs.Transform(raw); err != nil || !bytes.Equal(ref, got) {
				t.Errorf("jcs.Transform = %q, %v", ref, err)
			}
			if again, err := canon(got); err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent: %q, %v", again, err)
			}
		})
	}
}

func TestGoldenBase64URL(t *testing.T) {
	for _, v := range golden(t, "base64url") {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var in struct {
				Encoded string `json:"encoded"`
				Lenient bool   `json:"lenient"`
			}
			decodeInto(t, v.Input, &in)
			decode := contracts.DecodeBase64URL
			if in.Lenient {
				decode = contracts.DecodeBase64Lenient
			}
			got, err := decode(in.Encoded)
			if o := contracts.Outcome(err); o != v.Expect {
				t.Fatalf("outcome %s (%v), want %s (source: %s)", o, err, v.Expect, v.Source)
			}
			if err != nil {
				return
			}
			var out struct {
				BytesHex string `json:"bytes_hex"`
			}
			decodeInto(t, v.Output, &out)
			if hex.EncodeToString(got) != out.BytesHex {
				t.Errorf("decoded %x, want %s", got, out.BytesHex)
			}
			if !in.Lenient {
				if enc := contracts.EncodeBase64URL(got); enc != in.Encoded {
					t.Errorf("re-encoded %q, want %q", enc, in.Encoded)
				}
			}
		})
	}
}

func TestGoldenFrame(t *testing.T) {
	for _, v := range golden(t, "frame") {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var in struct {
				Wire    string `json:"wire"`
				WireHex string `json:"wire_hex"`
			}
			decodeInto(t, v.Input, &in)
			data := []byte(in.Wire)
			if in.WireHex != "" {
				var err error
				if data, err = hex.DecodeString(in.WireHex); err != nil {
					t.Fatal(err)
				}
			}
			f, rest, err := contracts.DecodeFrame(data)
			if o := contracts.Outcome(err); o != v.Expect {
				t.Fatalf("outcome %s (%v), want %s (source: %s)", o, err, v.Expect, v.Source)
			}
			if err != nil {
				var out struct {
					MessageContains string `json:"message_contains"`
				}
				decodeInto(t, v.Output, &out)
				if !strings.Contains(err.Error(), out.MessageContains) {
					t.Errorf("error %q does not contain %q", err, out.MessageContains)
				}
				return
			}
			var out struct {
				Type         string `json:"type"`
				Flags        uint32 `json:"flags"`
				PayloadHex   string `json:"payload_hex"`
				SignatureHex string `json:"signature_hex"`
				Canonical    string `json:"canonical"`
				Rest         string `json:"rest"`
			}
			decodeInto(t, v.Output, &out)
			if string(f.Type) != out.Type || f.Flags != out.Flags || f.Version != 1 ||
				hex.EncodeToString(f.Payload) != out.PayloadHex || hex.EncodeToString(f.Signature) != out.SignatureHex {
				t.Errorf("decoded %+v, want %+v", f, out)
			}
			if string(rest) != out.Rest {
				t.Errorf("rest %q, want %q", rest, out.Rest)
			}
			enc, err := f.Encode()
			if err != nil || string(enc) != out.Canonical {
				t.Errorf("Encode = %s, %v; want %s", enc, err, out.Canonical)
			}
		})
	}
}

func TestGoldenCursor(t *testing.T) {
	for _, v := range golden(t, "cursor") {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var in struct {
				Cursor string `json:"cursor"`
			}
			decodeInto(t, v.Input, &in)
			c, err := contracts.DecodeCursor(in.Cursor)
			if o := contracts.Outcome(err); o != v.Expect {
				t.Fatalf("outcome %s (%v), want %s (source: %s)", o, err, v.Expect, v.Source)
			}
			if err != nil {
				return
			}
			var out struct {
				Timestamp int64  `json:"timestamp"`
				EventID   string `json:"event_id"`
			}
			decodeInto(t, v.Output, &out)
			if c.Timestamp != out.Timestamp || c.EventID != out.EventID {
				t.Errorf("decoded %+v, want %+v", c, out)
			}
			if enc, err := contracts.EncodeCursor(out.Timestamp, out.EventID); err != nil || enc != in.Cursor {
				t.Errorf("EncodeCursor = %q, %v; want %q", enc, err, in.Cursor)
			}
		})
	}
}

func TestGoldenUUIDv7(t *testing.T) {
	for _, v := range golden(t, "uuidv7") {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var in struct {
				UUID string `json:"uuid"`
			}
			var out struct {
				IsUUIDv7     bool   `json:"is_uuidv7"`
				IsUUIDv7Fold bool   `json:"is_uuidv7_fold"`
				UnixMS       *int64 `json:"unix_ms"`
			}
			decodeInto(t, v.Input, &in)
			decodeInto(t, v.Output, &out)
			if got := contracts.IsUUIDv7(in.UUID); got != out.IsUUIDv7 {
				t.Errorf("IsUUIDv7(%q) = %v, want %v", in.UUID, got, out.IsUUIDv7)
			}
			if got := contracts.IsUUIDv7Fold(in.UUID); got != out.IsUUIDv7Fold {
				t.Errorf("IsUUIDv7Fold(%q) = %v, want %v", in.UUID, got, out.IsUUIDv7Fold)
			}
			ts, err := contracts.UUIDv7Time(in.UUID)
			if (err == nil) != out.IsUUIDv7 {
				t.Errorf("UUIDv7Time(%q) error %v", in.UUID, err)
			}
			if out.UnixMS != nil && ts.UnixMilli() != *out.UnixMS {
				t.Errorf("UUIDv7Time(%q) = %d ms, want %d", in.UUID, ts.UnixMilli(), *out.UnixMS)
			}
		})
	}
}

// TestGoldenPins checks the derived pins of identity.json and capability.json
// with the standard library alone, so that a wrong pin cannot hide behind a
// matching bug in the identity or capability package.
func TestGoldenPins(t *testing.T) {
	for _, v := range golden(t, "identity") {
		var in struct {
			SeedHex     string `json:"seed_hex"`
			MessageUTF8 string `json:"message_utf8"`
		}
		var out struct {
			PublicKeyHex  string `json:"public_key_hex"`
			Address       string `json:"address"`
			SignatureB64U string `json:"signature_b64u"`
		}
		decodeInto(t, v.Input, &in)
		if v.Expect != contracts.OutcomeOK || in.SeedHex == "" {
			continue
		}
		decodeInto(t, v.Output, &out)
		seed, _ := hex.DecodeString(in.SeedHex)
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		addr := sha256.Sum256(pub)
		if hex.EncodeToString(pub) != out.PublicKeyHex || hex.EncodeToString(addr[:]) != out.Address {
			t.Errorf("identity/%s: public key %x, address %x", v.Name, pub, addr)
		}
		if sig := contracts.EncodeBase64URL(ed25519.Sign(priv, []byte(in.MessageUTF8))); sig != out.SignatureB64U {
			t.Errorf("identity/%s: signature %s, want %s", v.Name, sig, out.SignatureB64U)
		}
	}

	vs := golden(t, "capability")
	var in struct {
		SeedHex string          `json:"seed_hex"`
		Payload json.RawMessage `json:"payload"`
	}
	var out struct {
		SigningInput   string `json:"signing_input"`
		Signature      string `json:"signature"`
		Token          string `json:"token"`
		CapabilityHash string `json:"capability_hash"`
	}
	decodeInto(t, vs[0].Input, &in)
	decodeInto(t, vs[0].Output, &out)
	signing, err := contracts.CanonicalizeStrict(in.Payload)
	if err != nil || string(signing) != out.SigningInput {
		t.Fatalf("canonical payload %s, %v; want %s", signing, err, out.SigningInput)
	}
	seed, _ := hex.DecodeString(in.SeedHex)
	priv := ed25519.NewKeyFromSeed(seed)
	if sig := contracts.EncodeBase64URL(ed25519.Sign(priv, signing)); sig != out.Signature {
		t.Errorf("capability signature %s, want %s", sig, out.Signature)
	}
	var tok map[string]any
	decodeInto(t, json.RawMessage(out.Token), &tok)
	tok["signature"] = out.Signature
	canonTok, err := contracts.MarshalStrict(tok)
	if err != nil || string(canonTok) != out.Token {
		t.Errorf("canonical token %s, %v; want %s", canonTok, err, out.Token)
	}
	if h := sha256.Sum256(canonTok); hex.EncodeToString(h[:]) != out.CapabilityHash {
		t.Errorf("capability_hash %x, want %s", h, out.CapabilityHash)
	}
	// The tampered copies really fail under the pinned key.
	pub := priv.Public().(ed25519.PublicKey)
	for _, v := range vs[1:] {
		var tin struct {
			Token string `json:"token"`
		}
		decodeInto(t, v.Input, &tin)
		var m map[string]any
		decodeInto(t, json.RawMessage(tin.Token), &m)
		sig, err := contracts.DecodeBase64URL(m["signature"].(string))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		delete(m, "signature")
		msg, err := contracts.MarshalStrict(m)
		if err != nil {
			t.Fatal(err)
		}
		if ed25519.Verify(pub, msg, sig) {
			t.Errorf("capability/%s verifies under the pinned key", v.Name)
		}
	}
}
