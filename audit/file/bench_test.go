package file_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
	"golang.org/x/mod/sumdb/tlog"
)

// commitCounter counts the store appends (group commits, one journal
// fsync each) under a Log.
type commitCounter struct {
	*file.Store
	commits atomic.Int64
}

func (c *commitCounter) Append(ctx context.Context, entries [][]byte, build audit.BuildFunc) (uint64, error) {
	c.commits.Add(1)
	return c.Store.Append(ctx, entries, build)
}

// BenchmarkDurableAppend: group-committed durable appends from many
// goroutines, against the primitives they are built on, in one run: bare
// tlog hashing of the same leaf, and one 4 KiB write + fsync (the cost a
// group commit amortizes over its batch). Each reports cpu-ns/op, the
// process CPU time per operation; the group commit also reports
// events/fsync, its average batch.
func BenchmarkDurableAppend(b *testing.B) {
	ev := audittest.Event(1)
	b.Run("file_group_commit", func(b *testing.B) {
		s := open(b, b.TempDir(), file.Config{})
		defer s.Close()
		c := &commitCounter{Store: s}
		l := audittest.NewLog(b, c)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(128)
		b.ResetTimer()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		reportCPU(b, cpu)
		if n := c.commits.Load(); n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "events/fsync")
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
		cpu := processCPU()
		for b.Loop() {
			hs, err := tlog.StoredHashes(n, leaf, r)
			if err != nil {
				b.Fatal(err)
			}
			hashes = append(hashes, hs...)
			n++
		}
		reportCPU(b, cpu)
	})
	b.Run("bare_write_fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "f"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}

// reportCPU reports cpu-ns/op: process CPU time since start per operation.
func reportCPU(b *testing.B, start int64) {
	if start >= 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}
