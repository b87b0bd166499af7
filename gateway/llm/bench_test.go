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

// BenchmarkChatCompletionStream is one attested streamed completion of 20
// chunks through the proxy with a hard budget: each chunk parsed, counted
// and flushed, the usage chunk read, settled and audited once.
func BenchmarkChatCompletionStream(b *testing.B) {
	up := newStreamUpstream(b)
	f := newFixture(b, func(c *Config) { c.Upstream = up.srv.URL + "/v1" })
	words := make([]string, 20)
	for i := range words {
		words[i] = "word"
	}
	up.set(sseScript{contents: words, prompt: 5, completion: 20, total: 25, done: true}.run(up))
	alice := f.agent("m")
	f.hardBudget(alice, 1<<50, budget.ModeHard)
	body := `{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`
	b.ReportAllocs()
	for b.Loop() {
		if resp, evs, _ := alice.stream(body); resp.StatusCode != 200 || len(evs) != 22 {
			b.Fatalf("%d, %d events", resp.StatusCode, len(evs))
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
