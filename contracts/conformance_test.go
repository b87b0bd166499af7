package contracts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// Conformance tests against the talos-contracts reference vectors
// (../shared/reference/talos-contracts or $TALOS_CONTRACTS_DIR): base64url,
// sdk/canonical_json, crypto/canonical_hash, uuidv7, ordering,
// cursor_derivation, python/tests/vectors/golden.json and sdk/frame_codec.

func readVectors(t *testing.T, rel string, v any) {
	t.Helper()
	if err := json.Unmarshal(testenv.ReadContract(t, rel), v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %s", code)
	}
	var e *contracts.Error
	if !errors.As(err, &e) || string(e.Code) != code {
		t.Fatalf("error %v (%T), want a *contracts.Error with code %s", err, err, code)
	}
}

func TestConformanceBase64URL(t *testing.T) {
	var vec struct {
		Valid []struct {
			BytesHex string `json:"bytes_hex"`
			Encoded  string `json:"encoded"`
		} `json:"valid"`
		Invalid []string `json:"invalid"`
	}
	readVectors(t, "test_vectors/base64url.json", &vec)
	if n := len(vec.Valid) + len(vec.Invalid); n != 17 {
		t.Fatalf("base64url.json has %d cases, want 17", n)
	}
	for _, c := range vec.Valid {
		t.Run("valid/"+c.Encoded, func(t *testing.T) {
			want, err := hex.DecodeString(c.BytesHex)
			if err != nil {
				t.Fatal(err)
			}
			if got := contracts.EncodeBase64URL(want); got != c.Encoded {
				t.Errorf("EncodeBase64URL(%x) = %q, want %q", want, got, c.Encoded)
			}
			got, err := contracts.DecodeBase64URL(c.Encoded)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("DecodeBase64URL(%q) = %x, %v; want %x", c.Encoded, got, err, want)
			}
		})
	}
	for _, s := range vec.Invalid {
		t.Run(fmt.Sprintf("invalid/%q", s), func(t *testing.T) {
			got, err := contracts.DecodeBase64URL(s)
			wantCode(t, err, string(contracts.CodeInvalidInput))
			if got != nil {
				t.Errorf("DecodeBase64URL(%q) returned %x with its error", s, got)
			}
		})
	}
}

func TestConformanceCanonicalJSON(t *testing.T) {
	var vec struct {
		Vectors []struct {
			TestID   string                     `json:"test_id"`
			Inputs   map[string]json.RawMessage `json:"inputs"`
			Expected map[string]string          `json:"expected"`
		} `json:"vectors"`
	}
	readVectors(t, "test_vectors/sdk/canonical_json.json", &vec)
	if len(vec.Vectors) != 5 {
		t.Fatalf("sdk/canonical_json.json has %d vectors, want 5", len(vec.Vectors))
	}
	for _, c := range vec.Vectors {
		t.Run(c.TestID, func(t *testing.T) {
			var input []byte
			switch {
			case c.Inputs["unordered"] != nil:
				input = c.Inputs["unordered"]
			case c.Inputs["pretty_printed"] != nil:
				// The input is JSON text carried in a JSON string.
				var s string
				if err := json.Unmarshal(c.Inputs["pretty_printed"], &s); err != nil {
					t.Fatal(err)
				}
				input = []byte(s)
			case c.Inputs["value"] != nil:
				input = c.Inputs["value"]
			default:
				t.Fatalf("unknown inputs %v", c.Inputs)
			}
			got, err := contracts.Canonicalize(input)
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", input, err)
			}
			want, ok := c.Expected["canonical"]
			if !ok {
				want, ok = c.Expected["canonical_number"]
			}
			if !ok {
				t.Fatalf("no canonical output in %v", c.Expected)
			}
			if string(got) != want {
				t.Errorf("Canonicalize(%s) = %s, want %s", input, got, want)
			}
			if h, ok := c.Expected["hash_sha256_hex"]; ok {
				sum := sha256.Sum256(got)
				if hex.EncodeToString(sum[:]) == h {
					t.Errorf("the known-bad hash %s now matches: drop the skip", h)
				}
				// Known-bad vector field (digest 1.1): hash_sha256_hex is a
				// fabricated pattern that no runner checks; the real SHA-256 of
				// the canonical bytes is pinned instead.
				if got := hex.EncodeToString(sum[:]); c.TestID == "key_ordering" &&
					got != "ebba85cfdc0a724b6cc327ecc545faeb38b9fe02eca603b430eb872f5cf75370" {
					t.Errorf("sha256(canonical) = %s", got)
				}
				t.Logf("skipped expected.hash_sha256_hex %s: known-bad in the contracts (fabricated value)", h)
			}
		})
	}
}

func TestConformanceCanonicalHash(t *testing.T) {
	var vec struct {
		Tests []struct {
			Name         string          `json:"name"`
			Input        json.RawMessage `json:"input"`
			ExpectedJSON string          `json:"expected_json"`
		} `json:"tests"`
	}
	readVectors(t, "test_vectors/crypto/canonical_hash.json", &vec)
	if len(vec.Tests) != 2 {
		t.Fatalf("crypto/canonical_hash.json has %d tests, want 2", len(vec.Tests))
	}
	for _, c := range vec.Tests {
		t.Run(c.Name, func(t *testing.T) {
			got, err := contracts.Canonicalize(c.Input)
			if err != nil || string(got) != c.ExpectedJSON {
				t.Errorf("Canonicalize(%s) = %s, %v; want %s", c.Input, got, err, c.ExpectedJSON)
			}
			got, err = contracts.CanonicalizeStrict(c.Input)
			if err != nil || string(got) != c.ExpectedJSON {
				t.Errorf("CanonicalizeStrict(%s) = %s, %v; want %s", c.Input, got, err, c.ExpectedJSON)
			}
		})
	}
}

func TestConformanceUUIDv7(t *testing.T) {
	var vec struct {
		Valid   []string `json:"valid"`
		Invalid []string `json:"invalid"`
	}
	readVectors(t, "test_vectors/uuidv7.json", &vec)
	if len(vec.Valid)+len(vec.Invalid) != 7 {
		t.Fatalf("uuidv7.json has %d cases, want 7", len(vec.Valid)+len(vec.Invalid))
	}
	for _, s := range vec.Valid {
		if !contracts.IsUUIDv7(s) || !contracts.IsUUIDv7Fold(s) {
			t.Errorf("IsUUIDv7(%q) = false, want true", s)
		}
		if _, err := contracts.UUIDv7Time(s); err != nil {
			t.Errorf("UUIDv7Time(%q): %v", s, err)
		}
	}
	for _, s := range vec.Invalid {
		if contracts.IsUUIDv7(s) || contracts.IsUUIDv7Fold(s) {
			t.Errorf("IsUUIDv7(%q) = true, want false", s)
		}
		_, err := contracts.UUIDv7Time(s)
		wantCode(t, err, string(contracts.CodeInvalidInput))
	}
}

type orderingKey struct {
	Timestamp int64  `json:"timestamp"`
	EventID   string `json:"event_id"`
}

func (k orderingKey) cursor() contracts.Cursor {
	return contracts.Cursor{Timestamp: k.Timestamp, EventID: k.EventID}
}

type orderingCase struct {
	A        orderingKey `json:"a"`
	B        orderingKey `json:"b"`
	Expected int         `json:"expected"`
}

func checkOrdering(t *testing.T, cases []orderingCase) {
	t.Helper()
	for i, c := range cases {
		if got := contracts.CompareNewestFirst(c.A.cursor(), c.B.cursor()); got != c.Expected {
			t.Errorf("case %d: CompareNewestFirst(%v, %v) = %d, want %d", i, c.A, c.B, got, c.Expected)
		}
		// The order is antisymmetric.
		if got := contracts.CompareNewestFirst(c.B.cursor(), c.A.cursor()); got != -c.Expected {
			t.Errorf("case %d: CompareNewestFirst(b, a) = %d, want %d", i, got, -c.Expected)
		}
	}
}

func TestConformanceOrdering(t *testing.T) {
	var cases []orderingCase
	readVectors(t, "test_vectors/ordering.json", &cases)
	if len(cases) != 3 {
		t.Fatalf("ordering.json has %d cases, want 3", len(cases))
	}
	checkOrdering(t, cases)
}

func TestConformanceCursorDerivation(t *testing.T) {
	var cases []struct {
		Timestamp      int64  `json:"timestamp"`
		EventID        string `json:"event_id"`
		ExpectedCursor string `json:"expected_cursor"`
	}
	readVectors(t, "test_vectors/cursor_derivation.json", &cases)
	if len(cases) == 0 {
		t.Fatal("cursor_derivation.json has no cases")
	}
	for _, c := range cases {
		got, err := contracts.EncodeCursor(c.Timestamp, c.EventID)
		if err != nil || got != c.ExpectedCursor {
			t.Errorf("EncodeCursor(%d, %q) = %q, %v; want %q", c.Timestamp, c.EventID, got, err, c.ExpectedCursor)
		}
		cur, err := contracts.DecodeCursor(c.ExpectedCursor)
		if err != nil || cur.Timestamp != c.Timestamp || cur.EventID != c.EventID {
			t.Errorf("DecodeCursor(%q) = %+v, %v", c.ExpectedCursor, cur, err)
		}
		if chk := contracts.CheckCursorInvariant(c.Timestamp, c.EventID, c.ExpectedCursor); !chk.OK {
			t.Errorf("CheckCursorInvariant = %+v, want OK", chk)
		}
	}
}

// TestConformanceGolden runs every section of python/tests/vectors/golden.json
// this package implements: base64url, uuidv7, cursor and ordering. (Its
// redaction section belongs to the audit package.)
func TestConformanceGolden(t *testing.T) {
	var g struct {
		Base64URL struct {
			Encode []struct {
				RawInput []int  `json:"input"`
				Expected string `json:"expected"`
			} `json:"encode"`
			Decode []struct {
				Input    string `json:"input"`
				Expected []int  `json:"expected"`
			} `json:"decode"`
			Invalid []struct {
				Input string `json:"input"`
				Error string `json:"error"`
			} `json:"invalid"`
		} `json:"base64url"`
		UUIDv7 struct {
			Valid                []string `json:"valid"`
			Invalid              []string `json:"invalid"`
			ValidButNotCanonical []struct {
				Input            string `json:"input"`
				IsV7             bool   `json:"isV7"`
				IsCanonicalLower bool   `json:"isCanonicalLower"`
			} `json:"valid_but_not_canonical"`
			CanonicalLower []struct {
				Input    string `json:"input"`
				Expected bool   `json:"expected"`
			} `json:"canonical_lower"`
		} `json:"uuidv7"`
		Cursor struct {
			Derive []struct {
				Timestamp int64  `json:"timestamp"`
				EventID   string `json:"event_id"`
				Expected  string `json:"expected"`
			} `json:"derive"`
			Decode []struct {
				Input    string      `json:"input"`
				Expected orderingKey `json:"expected"`
			} `json:"decode"`
			Compare []struct {
				A        string `json:"a"`
				B        string `json:"b"`
				Expected int    `json:"expected"`
			} `json:"compare"`
			Invariant []struct {
				Event    json.RawMessage `json:"event"`
				Expected struct {
					OK     bool   `json:"ok"`
					Reason string `json:"reason"`
				} `json:"expected"`
			} `json:"invariant"`
		} `json:"cursor"`
		Ordering struct {
			Compare []orderingCase `json:"compare"`
		} `json:"ordering"`
	}
	readVectors(t, "python/tests/vectors/golden.json", &g)

	t.Run("base64url", func(t *testing.T) {
		for _, c := range g.Base64URL.Encode {
			in := ints2bytes(t, c.RawInput)
			if got := contracts.EncodeBase64URL(in); got != c.Expected {
				t.Errorf("EncodeBase64URL(%x) = %q, want %q", in, got, c.Expected)
			}
		}
		for _, c := range g.Base64URL.Decode {
			want := ints2bytes(t, c.Expected)
			got, err := contracts.DecodeBase64URL(c.Input)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("DecodeBase64URL(%q) = %x, %v; want %x", c.Input, got, err, want)
			}
		}
		for _, c := range g.Base64URL.Invalid {
			_, err := contracts.DecodeBase64URL(c.Input)
			wantCode(t, err, string(contracts.CodeInvalidInput))
		}
		if len(g.Base64URL.Encode)+len(g.Base64URL.Decode)+len(g.Base64URL.Invalid) != 11 {
			t.Errorf("golden base64url section changed size")
		}
	})

	t.Run("uuidv7", func(t *testing.T) {
		for _, s := range g.UUIDv7.Valid {
			if !contracts.IsUUIDv7(s) {
				t.Errorf("IsUUIDv7(%q) = false", s)
			}
		}
		for _, s := range g.UUIDv7.Invalid {
			if contracts.IsUUIDv7(s) || contracts.IsUUIDv7Fold(s) {
				t.Errorf("IsUUIDv7(%q) = true", s)
			}
		}
		for _, c := range g.UUIDv7.ValidButNotCanonical {
			if got := contracts.IsUUIDv7Fold(c.Input); got != c.IsV7 {
				t.Errorf("IsUUIDv7Fold(%q) = %v, want %v", c.Input, got, c.IsV7)
			}
			if got := contracts.IsUUIDv7(c.Input); got != c.IsCanonicalLower {
				t.Errorf("IsUUIDv7(%q) = %v, want %v", c.Input, got, c.IsCanonicalLower)
			}
		}
		for _, c := range g.UUIDv7.CanonicalLower {
			if got := contracts.IsUUIDv7(c.Input); got != c.Expected {
				t.Errorf("IsUUIDv7(%q) = %v, want %v", c.Input, got, c.Expected)
			}
		}
		if len(g.UUIDv7.Valid) == 0 || len(g.UUIDv7.CanonicalLower) == 0 {
			t.Error("golden uuidv7 section is empty")
		}
	})

	t.Run("cursor", func(t *testing.T) {
		for _, c := range g.Cursor.Derive {
			got, err := contracts.EncodeCursor(c.Timestamp, c.EventID)
			if err != nil || got != c.Expected {
				t.Errorf("EncodeCursor(%d, %q) = %q, %v; want %q", c.Timestamp, c.EventID, got, err, c.Expected)
			}
		}
		for _, c := range g.Cursor.Decode {
			got, err := contracts.DecodeCursor(c.Input)
			if err != nil || got != c.Expected.cursor() {
				t.Errorf("DecodeCursor(%q) = %+v, %v; want %+v", c.Input, got, err, c.Expected)
			}
		}
		for _, c := range g.Cursor.Compare {
			got, err := contracts.CompareCursors(c.A, c.B)
			if err != nil || got != c.Expected {
				t.Errorf("CompareCursors(%q, %q) = %d, %v; want %d", c.A, c.B, got, err, c.Expected)
			}
		}
		for _, c := range g.Cursor.Invariant {
			got := contracts.CheckCursorInvariantJSON(c.Event)
			if got.OK != c.Expected.OK || got.Reason != c.Expected.Reason {
				t.Errorf("CheckCursorInvariantJSON(%s) = %+v, want %+v", c.Event, got, c.Expected)
			}
		}
		if len(g.Cursor.Derive) != 2 || len(g.Cursor.Invariant) != 2 {
			t.Error("golden cursor section changed size")
		}
	})

	t.Run("ordering", func(t *testing.T) {
		if len(g.Ordering.Compare) != 3 {
			t.Fatalf("golden ordering has %d cases, want 3", len(g.Ordering.Compare))
		}
		checkOrdering(t, g.Ordering.Compare)
	})
}

func ints2bytes(t *testing.T, in []int) []byte {
	t.Helper()
	b := make([]byte, len(in))
	for i, v := range in {
		if v < 0 || v > 255 {
			t.Fatalf("byte value %d", v)
		}
		b[i] = byte(v)
	}
	return b
}

func TestConformanceFrameCodec(t *testing.T) {
	var vec struct {
		Vectors []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				FrameType        string `json:"frame_type"`
				PayloadUTF8      string `json:"payload_utf8"`
				EncodedBase64URL string `json:"encoded_base64url"`
			} `json:"inputs"`
			Expected struct {
				EncodedBase64URL string `json:"encoded_base64url"`
				FrameType        string `json:"frame_type"`
				Version          int    `json:"version"`
				Flags            uint32 `json:"flags"`
			} `json:"expected"`
		} `json:"vectors"`
		Negative []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				EncodedBase64URL string `json:"encoded_base64url"`
				EncodedHex       string `json:"encoded_hex"`
			} `json:"inputs"`
			ExpectedError struct {
				Code            string `json:"code"`
				MessageContains string `json:"message_contains"`
			} `json:"expected_error"`
		} `json:"negative_cases"`
	}
	readVectors(t, "test_vectors/sdk/frame_codec.json", &vec)
	if len(vec.Vectors) != 2 || len(vec.Negative) != 3 {
		t.Fatalf("sdk/frame_codec.json has %d+%d cases, want 2+3", len(vec.Vectors), len(vec.Negative))
	}
	for _, c := range vec.Vectors {
		t.Run(c.TestID, func(t *testing.T) {
			switch {
			case c.Expected.EncodedBase64URL != "":
				got, err := contracts.EncodeFrame([]byte(c.Inputs.PayloadUTF8), contracts.FrameType(c.Inputs.FrameType))
				if err != nil {
					t.Fatal(err)
				}
				if enc := contracts.EncodeBase64URL(got); enc != c.Expected.EncodedBase64URL {
					t.Errorf("EncodeFrame = %s (%s), want %s", got, enc, c.Expected.EncodedBase64URL)
				}
			case c.Inputs.EncodedBase64URL != "":
				data, err := contracts.DecodeBase64URL(c.Inputs.EncodedBase64URL)
				if err != nil {
					t.Fatal(err)
				}
				f, rest, err := contracts.DecodeFrame(data)
				if err != nil {
					t.Fatal(err)
				}
				if len(rest) != 0 || string(f.Type) != c.Expected.FrameType ||
					f.Version != c.Expected.Version || f.Flags != c.Expected.Flags {
					t.Errorf("DecodeFrame(%s) = %+v, rest %q; want %+v", data, f, rest, c.Expected)
				}
				again, err := f.Encode()
				if err != nil || !bytes.Equal(again, data) {
					t.Errorf("re-encoded %s, %v; want %s", again, err, data)
				}
			default:
				t.Fatalf("unrecognised vector %s", c.TestID)
			}
		})
	}
	for _, c := range vec.Negative {
		t.Run(c.TestID, func(t *testing.T) {
			var data []byte
			var err error
			if c.Inputs.EncodedHex != "" {
				data, err = hex.DecodeString(c.Inputs.EncodedHex)
			} else {
				data, err = contracts.DecodeBase64URL(c.Inputs.EncodedBase64URL)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, rest, err := contracts.DecodeFrame(data)
			wantCode(t, err, c.ExpectedError.Code)
			if !strings.Contains(err.Error(), c.ExpectedError.MessageContains) {
				t.Errorf("error %q does not contain %q", err, c.ExpectedError.MessageContains)
			}
			if !bytes.Equal(rest, data) {
				t.Errorf("rest after an error = %q, want the input", rest)
			}
		})
	}
}
