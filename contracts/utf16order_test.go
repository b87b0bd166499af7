package contracts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/gowebpki/jcs"
	"github.com/talosgo/talos/contracts"
)

// TestCanonicalKeyOrderUTF16 pins the interop note of DESIGN-NOTES
// (contracts): canonical JSON sorts object keys by UTF-16 code units (RFC
// 8785 §3.2.3), which differs from a code-point (or UTF-8 byte) sort only
// for keys that mix astral characters with U+E000–U+FFFF. The vectors are
// in testdata/jcs (not embedded: they document a property, no caller loads
// them).
func TestCanonicalKeyOrderUTF16(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "jcs", "utf16_key_order.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []contracts.Vector }
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Vectors) == 0 {
		t.Fatalf("vectors: %v", err)
	}
	differing := 0
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var in string
			var out struct {
				Canonical      string `json:"canonical"`
				Differs        bool   `json:"codepoint_order_differs"`
				CodepointOrder string `json:"codepoint_order"`
			}
			if err := json.Unmarshal(v.Input, &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(v.Output, &out); err != nil {
				t.Fatal(err)
			}
			got, err := contracts.Canonicalize([]byte(in))
			if err != nil || string(got) != out.Canonical {
				t.Fatalf("Canonicalize = %s %v, want %s", got, err, out.Canonical)
			}
			// An independent JCS implementation agrees.
			if j, err := jcs.Transform([]byte(in)); err != nil || string(j) != out.Canonical {
				t.Fatalf("jcs.Transform = %s %v", j, err)
			}
			// Marshal of a Go map (encoding/json sorts map keys by UTF-8
			// bytes, i.e. code points) is re-sorted into UTF-16 order.
			var m map[string]any
			if err := json.Unmarshal([]byte(in), &m); err != nil {
				t.Fatal(err)
			}
			if mb, err := contracts.Marshal(m); err != nil || string(mb) != out.Canonical {
				t.Fatalf("Marshal(map) = %s %v", mb, err)
			}
			// The vector's claim about the two orders holds.
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			byCodePoint := slices.Sorted(slices.Values(keys))
			byUTF16 := slices.SortedFunc(slices.Values(keys), func(a, b string) int {
				return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
			})
			if differs := !slices.Equal(byCodePoint, byUTF16); differs != out.Differs || (out.CodepointOrder != out.Canonical) != out.Differs {
				t.Fatalf("orders differ = %v, vector says %v", differs, out.Differs)
			}
			if out.Differs {
				mixesAstral := slices.ContainsFunc(keys, func(k string) bool {
					return strings.ContainsFunc(k, func(r rune) bool { return r >= 0x10000 })
				})
				mixesHighBMP := slices.ContainsFunc(keys, func(k string) bool {
					return strings.ContainsFunc(k, func(r rune) bool { return r >= 0xE000 && r <= 0xFFFF })
				})
				if !mixesAstral || !mixesHighBMP {
					t.Fatal("orders differ without astral and U+E000–U+FFFF keys")
				}
				differing++
			}
		})
	}
	if differing == 0 {
		t.Fatal("no vector shows the two orders differing")
	}
}
