package contracts_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

type benchAuthorize struct {
	Capability string            `json:"capability"`
	Tool       string            `json:"tool"`
	Action     string            `json:"action"`
	ArgsDigest string            `json:"args_digest,omitempty"`
	Scope      map[string]string `json:"scope,omitempty"`
}

// BenchmarkDecodeRequest decodes an authorize request body (a 330-byte
// capability token in it) with every rule of the HTTP layer (strict
// literals, case-folded duplicates, exact field names), beside
// json.Unmarshal into the same struct, in the same run.
func BenchmarkDecodeRequest(b *testing.B) {
	raw, _ := json.Marshal(map[string]string{"capability": strings.Repeat("x", 330), "tool": "files", "action": "read"})
	b.Run("UnmarshalStrictFold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v benchAuthorize
			if err := contracts.UnmarshalStrictFold(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckCaseFold+UnmarshalStrict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v benchAuthorize
			if err := contracts.CheckCaseFold(raw); err != nil {
				b.Fatal(err)
			}
			if err := contracts.UnmarshalStrict(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v benchAuthorize
			if err := json.Unmarshal(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
