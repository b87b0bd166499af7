package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/audit"
)

// BenchmarkAuditVerify measures a full pass of audit verify over a 4096
// entry log in a directory (per entry: read, ParseEvent, leaf hash, tile
// compare, root), beside the bare per-entry primitive (ParseEvent +
// LeafHash over the same entries in memory) in the same run.
func BenchmarkAuditVerify(b *testing.B) {
	const n = 4096
	dir := b.TempDir()
	l := newTestLog(b, dir)
	l.grow(b, 0, n, 0)
	src := dirSource{dir: dir}
	ctx := context.Background()
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		b.Fatal(err)
	}
	k, err := parseLogKey(l.vkey, "")
	if err != nil {
		b.Fatal(err)
	}
	cp, err := k.open(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("entries", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := verifyTree(ctx, src, cp, false, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("hashes-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := verifyTree(ctx, src, cp, true, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	var entries [][]byte
	for i := int64(0); i < n/tileWidth; i++ {
		es, _, err := entryBundle(ctx, src, i, tileWidth)
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, es...)
	}
	b.Run("primitive-ParseEvent+LeafHash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, e := range entries {
				if _, err := audit.ParseEvent(e); err != nil {
					b.Fatal(err)
				}
				_ = audit.LeafHash(e)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
