package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkDurableAppend: group-committed durable appends from many
// goroutines, against the primitives they are built on, in one run: bare
// tlog hashing of the same leaf, and one 4 KiB write + fsync (the cost a
// group commit amortizes over its batch).
func BenchmarkDurableAppend(b *testing.B) {
	ev := audittest.Event(1)
	b.Run("file_group_commit", func(b *testing.B) {
		s := open(b, b.TempDir(), file.Config{})
		defer s.Close()
		l := audittest.NewLog(b, s)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(128)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
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
	b.Run("bare_write_fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "f"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
