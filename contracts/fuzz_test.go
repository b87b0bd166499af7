package contracts_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/gowebpki/jcs"
	"github.com/talosgo/talos/contracts"
)

// Fuzz tests with properties. The seed corpora come from the embedded golden
// vectors, so `go test` runs every seed as a unit test; run
// `go test ./contracts -run '^$' -fuzz FuzzX -fuzztime 30s` to explore.

// goldenInputs returns a string field of every vector's input in a golden
// file, decoding *_hex fields to raw bytes.
func goldenInputs(f *testing.F, name string, fields ...string) [][]byte {
	f.Helper()
	vs, err := contracts.GoldenVectors(name)
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, v := range vs {
		var in map[string]any
		if err := json.Unmarshal(v.Input, &in); err != nil {
			f.Fatal(err)
		}
		for _, field := range fields {
			s, ok := in[field].(string)
			if !ok {
				continue
			}
			if len(field) > 4 && field[len(field)-4:] == "_hex" {
				b, err := hex.DecodeString(s)
				if err != nil {
					f.Fatal(err)
				}
				out = append(out, b)
				continue
			}
			out = append(out, []byte(s))
		}
	}
	if len(out) == 0 {
		f.Fatalf("no seeds in golden file %s", name)
	}
	return out
}

// FuzzCanonicalize: an accepted input is canonicalized exactly as the
// reference RFC 8785 implementation (jcs.Transform) does, the output is a
// fixed point, the strict mode accepts a subset with the same output, and
// every rejection is a TALOS_INVALID_INPUT error.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range goldenInputs(f, "canonical_json", "json", "json_hex") {
		f.Add(s)
	}
	f.Add([]byte(`{"version":"1.0","scope":[{"tool":"fs","actions":["read"]}],"exp":1767504000}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := contracts.Canonicalize(data)
		strict, serr := contracts.CanonicalizeStrict(data)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v has code %s", err, contracts.CodeOf(err))
			}
			if serr == nil {
				t.Fatalf("strict mode accepted what the normal mode rejected: %q", data)
			}
			if contracts.CheckJSON(data, false) == nil {
				t.Fatalf("CheckJSON accepted what Canonicalize rejected: %q", data)
			}
			return
		}
		ref, rerr := jcs.Transform(data)
		if rerr != nil || !bytes.Equal(out, ref) {
			t.Fatalf("Canonicalize(%q) = %q; jcs.Transform = %q, %v", data, out, ref, rerr)
		}
		again, err := contracts.Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q, %v", out, again, err)
		}
		if contracts.CheckJSON(data, false) != nil {
			t.Fatalf("CheckJSON rejected what Canonicalize accepted: %q", data)
		}
		if serr == nil && !bytes.Equal(strict, out) {
			t.Fatalf("strict output %q differs from %q", strict, out)
		}
	})
}

// FuzzDecodeBase64URL: an accepted string re-encodes to itself (one encoding
// per byte string), the lenient decoder accepts it with the same bytes, and
// every rejection is a TALOS_INVALID_INPUT error.
func FuzzDecodeBase64URL(f *testing.F) {
	for _, s := range goldenInputs(f, "base64url", "encoded") {
		f.Add(string(s))
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := contracts.DecodeBase64URL(s)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput || b != nil {
				t.Fatalf("DecodeBase64URL(%q) = %x, %v", s, b, err)
			}
		} else {
			if enc := contracts.EncodeBase64URL(b); enc != s {
				t.Fatalf("DecodeBase64URL(%q) accepted a non-canonical encoding of %x (canonical %q)", s, b, enc)
			}
			lb, lerr := contracts.DecodeBase64Lenient(s)
			if lerr != nil || !bytes.Equal(lb, b) {
				t.Fatalf("DecodeBase64Lenient(%q) = %x, %v; strict gave %x", s, lb, lerr, b)
			}
		}
		if lb, lerr := contracts.DecodeBase64Lenient(s); lerr == nil {
			if again, err := contracts.DecodeBase64URL(contracts.EncodeBase64URL(lb)); err != nil || !bytes.Equal(again, lb) {
				t.Fatalf("lenient bytes %x do not round-trip strictly", lb)
			}
		} else if contracts.CodeOf(lerr) != contracts.CodeInvalidInput {
			t.Fatalf("DecodeBase64Lenient(%q): %v", s, lerr)
		}
	})
}

// FuzzDecodeFrame: an accepted frame was read from JSON that the canonical
// JSON rules accept (so no duplicate keys or lone surrogates), re-encodes to
// the canonical form of those bytes (with flags defaulted to 0), decodes again
// to the same frame, and leaves exactly the bytes after it; a rejected one is
// a TALOS_FRAME_INVALID error that consumes nothing.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range goldenInputs(f, "frame", "wire", "wire_hex") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, rest, err := contracts.DecodeFrame(data)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeFrameInvalid || !bytes.Equal(rest, data) {
				t.Fatalf("DecodeFrame(%q): %v, rest %q", data, err, rest)
			}
			return
		}
		if len(rest) > len(data) || !bytes.Equal(data[len(data)-len(rest):], rest) {
			t.Fatalf("rest %q is not a suffix of the input", rest)
		}
		enc, err := fr.Encode()
		if err != nil {
			t.Fatalf("accepted frame %+v does not encode: %v", fr, err)
		}
		again, rest2, err := contracts.DecodeFrame(enc)
		if err != nil || len(rest2) != 0 || !frameEqual(again, fr) {
			t.Fatalf("re-decoded %+v, rest %q, %v; want %+v", again, rest2, err, fr)
		}
		// The consumed bytes, canonicalized with the default flags filled
		// in, are exactly the encoding: no second accepted form of a frame
		// other than JSON whitespace, member order and string escapes.
		consumed := data[:len(data)-len(rest)]
		if err := contracts.CheckJSON(consumed, false); err != nil {
			t.Fatalf("accepted bytes %q that canonical JSON rejects: %v", consumed, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(consumed, &m); err != nil {
			t.Fatalf("accepted bytes %q are not a JSON object: %v", consumed, err)
		}
		if _, ok := m["flags"]; !ok {
			m["flags"] = json.RawMessage("0")
		}
		canon, err := contracts.Marshal(m)
		if err != nil || !bytes.Equal(canon, enc) {
			t.Fatalf("canonical input %s, %v; encoding %s", canon, err, enc)
		}
	})
}

// FuzzDecodeCursor: an accepted cursor re-encodes to itself and compares
// equal to itself; a rejected one is a TALOS_INVALID_INPUT error with a zero
// Cursor.
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range goldenInputs(f, "cursor", "cursor") {
		f.Add(string(s))
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := contracts.DecodeCursor(s)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput || c != (contracts.Cursor{}) {
				t.Fatalf("DecodeCursor(%q) = %+v, %v", s, c, err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil || enc != s {
			t.Fatalf("DecodeCursor(%q) = %+v re-encodes to %q, %v", s, c, enc, err)
		}
		if n, err := contracts.CompareCursors(s, s); err != nil || n != 0 {
			t.Fatalf("CompareCursors(c, c) = %d, %v", n, err)
		}
		if chk := contracts.CheckCursorInvariant(c.Timestamp, c.EventID, s); !chk.OK {
			t.Fatalf("CheckCursorInvariant = %+v", chk)
		}
	})
}
