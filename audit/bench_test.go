package audit_test

import (
	"context"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkAppend measures in-memory appends against the bare RFC 6962
// hashing they include (tlog record hash + stored hashes), in one run.
func BenchmarkAppend(b *testing.B) {
	ev := audittest.Event(1)
	b.Run("memory_log", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := l.Append(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory_log_parallel", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("seal_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e := ev
			if _, err := e.Seal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare_tlog_hashing", func(b *testing.B) {
		e := ev
		leaf, _ := e.Seal()
		var hashes []tlog.Hash
		r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = hashes[x]
			}
			return out, nil
		})
		b.ReportAllocs()
		n := int64(0)
		for b.Loop() {
			hs, err := tlog.StoredHashes(n, leaf, r)
			if err != nil {
				b.Fatal(err)
			}
			hashes = append(hashes, hs...)
			n++
		}
	})
}
