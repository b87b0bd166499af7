package audit_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkAppend measures in-memory appends against the bare RFC 6962
// hashing they include (tlog record hash + stored hashes), in one run.
// Besides wall time, each reports cpu-ns/op: the process CPU time per
// operation (garbage collection included), which other processes on a
// loaded machine do not inflate.
func BenchmarkAppend(b *testing.B) {
	ev := audittest.Event(1)
	b.Run("memory_log", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		ctx := context.Background()
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if _, err := l.Append(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("memory_log_parallel", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		reportCPU(b, cpu)
	})
	b.Run("seal_only", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			e := ev
			if _, err := e.Seal(); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
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
}

// reportCPU reports cpu-ns/op: process CPU time since start per operation.
func reportCPU(b *testing.B, start int64) {
	if start >= 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

var (
	millionOnce sync.Once
	millionLog  *audit.Log
	millionCP   audit.Checkpoint
	millionRaw  []tlog.Hash // bare stored hashes of the same tree
)

const million = 1 << 20

// millionEntryLog builds a MemStore log of 2^20 small entries once.
func millionEntryLog(b *testing.B) {
	millionOnce.Do(func() {
		ctx := context.Background()
		s := audit.NewMemStore()
		const batch = 1 << 14
		for start := 0; start < million; start += batch {
			es := make([][]byte, batch)
			for i := range es {
				es[i] = []byte("entry " + strconv.Itoa(start+i))
			}
			if _, err := s.Append(ctx, es, audit.BuildHashes(es)); err != nil {
				b.Fatal(err)
			}
		}
		millionLog = audittest.NewLog(b, s)
		var err error
		if millionCP, err = millionLog.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		idx := make([]int64, tlog.StoredHashCount(million))
		for i := range idx {
			idx[i] = int64(i)
		}
		if millionRaw, err = s.ReadHashes(ctx, idx); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInclusionProof1M: proof generation and verification at 2^20
// entries through the Log and Store, against bare tlog on a plain slice.
func BenchmarkInclusionProof1M(b *testing.B) {
	millionEntryLog(b)
	ctx := context.Background()
	leaf := tlog.RecordHash([]byte("entry 123457"))
	bare := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = millionRaw[x]
		}
		return out, nil
	})
	b.Run("log_prove", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := millionLog.InclusionProof(ctx, 123457, million); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare_tlog_prove", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tlog.ProveRecord(million, 123457, bare); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, err := millionLog.InclusionProof(ctx, 123457, million)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := audit.VerifyInclusion(p, millionCP, 123457, leaf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare_tlog_verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := tlog.CheckRecord(p, million, millionCP.Hash, 123457, leaf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
