package capability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// fuzzJSONSeeds are documents for the digest and document-check fuzzers:
// canonical and not, nested, with escapes, numbers and the rejects
// (duplicate keys, lone surrogates, unsafe integers, trailing data).
var fuzzJSONSeeds = []string{
	`{}`, `{"a":1}`, `{ "b" : [1, 2.50, -0, 1e3], "a" : "x\u00e9\ud83d\ude00" }`,
	`{"data":"test","meta":{"k":[true,false,null]}}`, `{"data":"dGVzdA=="}`,
	`{"docs":[{"body":"a~b/c"}],"a/b":"x","m~n":"y"}`,
	`{"a":1,"a":2}`, `{"a":"\ud800"}`, `{"n":9007199254740993}`, `{"a":1} x`, `[1,2]`, `"s"`, `{`, ``,
}

// FuzzDocumentDigest: DocumentDigest never panics, rejects with a
// TALOS_INVALID_INPUT *contracts.Error, and an accepted document's digest
// is deterministic, is the SHA-256 of its canonical form, and is the same
// for that canonical form (every encoding of one document has one digest).
func FuzzDocumentDigest(f *testing.F) {
	for _, s := range fuzzJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		in := slices.Clone(doc)
		d, err := DocumentDigest(doc)
		if !slices.Equal(in, doc) {
			t.Fatal("DocumentDigest modified its input")
		}
		if err != nil {
			var ce *contracts.Error
			if !errors.As(err, &ce) || ce.Code != contracts.CodeInvalidInput || d != "" {
				t.Fatalf("rejection %q %v is not a TALOS_INVALID_INPUT *contracts.Error", d, err)
			}
			return
		}
		c, err := contracts.Canonicalize(doc)
		if err != nil {
			t.Fatalf("accepted document does not canonicalize: %v", err)
		}
		sum := sha256.Sum256(c)
		if d != hex.EncodeToString(sum[:]) || d != BytesDigest(c) {
			t.Fatalf("digest %s is not SHA-256 of the canonical form", d)
		}
		if d2, err := DocumentDigest(doc); err != nil || d2 != d {
			t.Fatalf("not deterministic: %s %v", d2, err)
		}
		if dc, err := DocumentDigest(c); err != nil || dc != d {
			t.Fatalf("canonical form digests to %s (%v), original to %s", dc, err, d)
		}
	})
}

// FuzzToolCallDigest: ToolCallDigest never panics, rejects with a
// TALOS_INVALID_INPUT *contracts.Error, and an accepted call's digest is
// deterministic, the same for the canonical form of its args, and
// different when read_only or a name changes.
func FuzzToolCallDigest(f *testing.F) {
	for i, s := range fuzzJSONSeeds {
		f.Add("fs-server", "read_file", i%2 == 0, []byte(s))
	}
	f.Add("a\xff", "b", false, []byte(`{}`))
	f.Add("", "", true, []byte(` {"path":"/etc/passwd"} `))
	f.Fuzz(func(t *testing.T, server, name string, readOnly bool, args []byte) {
		d, err := ToolCallDigest(server, name, readOnly, args)
		if err != nil {
			var ce *contracts.Error
			if !errors.As(err, &ce) || ce.Code != contracts.CodeInvalidInput || d != "" {
				t.Fatalf("rejection %q %v is not a TALOS_INVALID_INPUT *contracts.Error", d, err)
			}
			return
		}
		if len(d) != 64 {
			t.Fatalf("digest %q", d)
		}
		if d2, err := ToolCallDigest(server, name, readOnly, args); err != nil || d2 != d {
			t.Fatalf("not deterministic: %s %v", d2, err)
		}
		c, err := contracts.Canonicalize(args)
		if err != nil {
			t.Fatalf("accepted args do not canonicalize: %v", err)
		}
		if dc, err := ToolCallDigest(server, name, readOnly, c); err != nil || dc != d {
			t.Fatalf("canonical args digest to %s (%v), original to %s", dc, err, d)
		}
		if dr, err := ToolCallDigest(server, name, !readOnly, args); err != nil || dr == d {
			t.Fatalf("read_only does not change the digest: %v", err)
		}
		if dn, err := ToolCallDigest(server, name+"x", readOnly, args); err != nil || dn == d {
			t.Fatalf("the tool name does not change the digest: %v", err)
		}
	})
}

// FuzzValidateDocWrites: ValidateDocWrites never panics, never changes its
// inputs, answers with a *contracts.Error of one of the document codes or
// TALOS_INVALID_INPUT, is deterministic, and judges the canonical form of
// the args exactly as the original. When it accepts a call with no
// expected hash, the document's true hash is accepted and any other hash is
// DOC_HASH_MISMATCH.
func FuzzValidateDocWrites(f *testing.F) {
	for i, s := range fuzzJSONSeeds {
		f.Add([]byte(s), "/data", uint8(i%3), uint16(100), false)
	}
	f.Add([]byte(`{"docs":[{"body":"a~b/c"}]}`), "/docs/0/body", uint8(0), uint16(5), false)
	f.Add([]byte(`{"a/b":"x","m~n":"y"}`), "/a~1b", uint8(0), uint16(5), true)
	f.Add([]byte(`{"m~n":"y"}`), "/m~0n", uint8(0), uint16(0), false)
	f.Add([]byte(`{"data":"dGVzdA"}`), "/data", uint8(1), uint16(4), true)
	f.Add([]byte(`{"data":"!!"}`), "/data", uint8(1), uint16(4), false)
	f.Add([]byte(`{"a":[0,1]}`), "/a/01", uint8(0), uint16(4), false)
	f.Add([]byte(`"whole"`), "", uint8(0), uint16(9), false)
	encodings := []string{"utf8", "base64", "", "latin1"}
	allowed := []contracts.Code{contracts.CodeInvalidInput, CodeDocPointerInvalid, CodeDocEncodingInvalid, CodeDocSizeExceeded, CodeDocHashMismatch}
	f.Fuzz(func(t *testing.T, args []byte, ptr string, enc uint8, maxBytes uint16, wrongHash bool) {
		spec := DocSpec{WriteContentPointers: []string{ptr}, MaxWriteBytes: int(maxBytes), ContentEncoding: encodings[int(enc)%len(encodings)]}
		var expected []DocHash
		if wrongHash {
			expected = []DocHash{{Pointer: ptr, Hash: "00"}}
		}
		in := slices.Clone(args)
		err := ValidateDocWrites(spec, args, expected)
		if !slices.Equal(in, args) || spec.WriteContentPointers[0] != ptr {
			t.Fatal("ValidateDocWrites modified its input")
		}
		out := contracts.Outcome(err)
		if err != nil {
			var ce *contracts.Error
			if !errors.As(err, &ce) || !slices.Contains(allowed, ce.Code) {
				t.Fatalf("error %v is not a *contracts.Error with a document code", err)
			}
		}
		if again := contracts.Outcome(ValidateDocWrites(spec, args, expected)); again != out {
			t.Fatalf("not deterministic: %s then %s", out, again)
		}
		c, cerr := contracts.Canonicalize(args)
		if cerr != nil {
			if err == nil {
				t.Fatalf("accepted args that do not canonicalize: %v", cerr)
			}
			return
		}
		if oc := contracts.Outcome(ValidateDocWrites(spec, c, expected)); oc != out {
			t.Fatalf("canonical args judged %s, original %s", oc, out)
		}
		if err != nil || wrongHash {
			return
		}
		// Accepted without a hash: the true hash passes, another fails.
		var doc any
		dec := json.NewDecoder(bytes.NewReader(c))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		v, _ := resolvePointer(doc, ptr)
		content := []byte(v.(string))
		if spec.ContentEncoding == "base64" {
			if content, err = contracts.DecodeBase64Lenient(v.(string)); err != nil {
				t.Fatal(err)
			}
		}
		if err := ValidateDocWrites(spec, args, []DocHash{{Pointer: ptr, Hash: BytesDigest(content)}}); err != nil {
			t.Fatalf("the document's own hash is refused: %v", err)
		}
		bad := []DocHash{{Pointer: ptr, Hash: BytesDigest(append(content, 0))}}
		if got := contracts.Outcome(ValidateDocWrites(spec, args, bad)); got != string(CodeDocHashMismatch) {
			t.Fatalf("another hash: %s, want %s", got, CodeDocHashMismatch)
		}
	})
}

// TestToolCallDigestInvalidUTF8: encoding/json would turn an invalid byte
// into U+FFFD, giving "a\xff" and "a\uFFFD" one digest; it is refused.
func TestToolCallDigestInvalidUTF8(t *testing.T) {
	if _, err := ToolCallDigest("a\uFFFD", "b", false, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, names := range [][2]string{{"a\xff", "b"}, {"a", "b\xc3"}} {
		_, err := ToolCallDigest(names[0], names[1], false, json.RawMessage(`{}`))
		if contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%q: %v", names, err)
		}
	}
}
