package llm

import (
	"crypto/ed25519"
	"testing"

	"github.com/talosgo/talos/budget"
)

// BenchmarkChatCompletion is one attested chat completion through the
// proxy over loopback HTTP with a hard budget: attestation signing and
// checking, strict parsing, the Kernel (capability verification, rate
// limit, reservation, settle, audit append) and the loopback upstream.
// BenchmarkEd25519Verify, in the same run, is the unit to compare it with.
func BenchmarkChatCompletion(b *testing.B) {
	f := newFixture(b)
	alice := f.agent("m")
	f.hardBudget(alice, 1<<50, budget.ModeHard)
	body := `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`
	b.ReportAllocs()
	for b.Loop() {
		if resp, raw, _ := alice.chat(body); resp.StatusCode != 200 {
			b.Fatalf("%d %s", resp.StatusCode, raw)
		}
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 256)
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}
