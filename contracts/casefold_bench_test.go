package contracts_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// BenchmarkCaseFold prices the case-fold rule on a kernel API body (an
// authorize request carrying a ~700-byte token) and on a 4 KiB chat
// completion, beside UnmarshalStrict and the ed25519.Verify every attested
// request already pays, in the same run.
func BenchmarkCaseFold(b *testing.B) {
	authorize := []byte(`{"capability":"` + strings.Repeat("eyJ2ZXJzaW9uIjoiMS4wIiwiaXNzdWVyIjoiZGlkOmtleTp6", 15) + `","tool":"files","action":"read"}`)
	chat := []byte(`{"model":"gpt-cheap","max_tokens":256,"temperature":0.2,"messages":[` +
		strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum ", 30)+`"},`, 10) +
		`{"role":"user","content":"end"}]}`)
	type authReq struct {
		Capability string `json:"capability"`
		Tool       string `json:"tool"`
		Action     string `json:"action"`
	}
	b.Run("CheckCaseFold/authorize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := contracts.CheckCaseFold(authorize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnmarshalStrict/authorize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v authReq
			if err := contracts.UnmarshalStrict(authorize, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnmarshalFields/chat4KiB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v gatewayDoc
			if err := contracts.UnmarshalFields(chat, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	pub, priv, _ := ed25519.GenerateKey(nil)
	sig := ed25519.Sign(priv, authorize)
	b.Run("ed25519.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, authorize, sig) {
				b.Fatal("verify")
			}
		}
	})
}
