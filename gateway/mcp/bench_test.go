package mcp

import (
	"crypto/ed25519"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/budget"
)

// BenchmarkToolCall is one attested tools/call through the gateway over
// loopback HTTP: the go-sdk client, attestation signing and checking, the
// Kernel (capability verification, rate limit, audit append), the
// in-memory upstream and back. BenchmarkEd25519Verify, in the same run,
// is the unit to compare it with.
func BenchmarkToolCall(b *testing.B) {
	f := newFixture(b, func(_ *Config, r *map[string]budget.Limit) { (*r)[SurfaceID] = budget.PerSecond(1_000_000) })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.CallTool(b.Context(), read); err != nil {
			b.Fatal(err)
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

// BenchmarkListTools is one attested tools/list over loopback, filtered
// for the caller (one Authorizer question per tool, one Kernel call).
func BenchmarkListTools(b *testing.B) {
	f := newFixture(b, func(_ *Config, r *map[string]budget.Limit) { (*r)[SurfaceID] = budget.PerSecond(1_000_000) })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.ListTools(b.Context(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdempotentReplay is a repeated write answered from the
// idempotency store, without reaching the upstream.
func BenchmarkIdempotentReplay(b *testing.B) {
	f := newFixture(b, func(_ *Config, r *map[string]budget.Limit) { (*r)[SurfaceID] = budget.PerSecond(1_000_000) })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "write_file"))
	p := &sdk.CallToolParams{Meta: sdk.Meta{MetaIdempotencyKey: "bench"}, Name: "files.write_file", Arguments: map[string]any{"path": "/a"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.CallTool(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
	if f.files.writes.Load() != 1 {
		b.Fatalf("%d executions", f.files.writes.Load())
	}
}
