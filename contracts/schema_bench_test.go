package contracts_test

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// BenchmarkValidate measures Validate on an audit event (about 700 bytes)
// beside encoding/json decoding the same bytes, and CheckJSON alone (the
// input-rule pass Validate runs first).
func BenchmarkValidate(b *testing.B) {
	doc := []byte(schemaSeeds["audit/audit_event"][0])
	if err := contracts.Validate("audit/audit_event", doc); err != nil {
		b.Fatal(err)
	}
	b.Run("validate_audit_event", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := contracts.Validate("audit/audit_event", doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			var v map[string]any
			if err := json.Unmarshal(doc, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := contracts.CheckJSON(doc, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
