package audit_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"golang.org/x/mod/sumdb/tlog"
)

func TestMemStoreConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return audit.NewMemStore() })
}

// TestBuildHashesMatchesTlog checks the batch builder against
// tlog.StoredHashes leaf by leaf, for batches of every size starting at
// every old size up to 70 (all carry patterns through level 6) and a few
// larger ones.
func TestBuildHashesMatchesTlog(t *testing.T) {
	const total = 600
	var stored []tlog.Hash
	reads := 0
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		reads++
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, audit.NotFound("beyond")
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	entries := make([][]byte, total)
	for i := range entries {
		entries[i] = []byte("entry " + strconv.Itoa(i))
		hs, err := tlog.StoredHashes(int64(i), entries[i], r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	check := func(old, m int) {
		t.Helper()
		full := stored
		stored = full[:tlog.StoredHashCount(int64(old))]
		reads = 0
		got, err := audit.BuildHashes(entries[old:old+m])(uint64(old), r)
		stored = full
		if err != nil {
			t.Fatalf("old %d, batch %d: %v", old, m, err)
		}
		if reads > 1 {
			t.Fatalf("old %d, batch %d: %d reads, want at most one", old, m, reads)
		}
		want := full[tlog.StoredHashCount(int64(old)):tlog.StoredHashCount(int64(old+m))]
		if len(got) != len(want) {
			t.Fatalf("old %d, batch %d: %d hashes, want %d", old, m, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("old %d, batch %d: hash %d differs", old, m, i)
			}
		}
	}
	for old := 0; old <= 70; old++ {
		for m := 0; old+m <= 140; m++ {
			check(old, m)
		}
	}
	for _, c := range [][2]int{{255, 1}, {256, 300}, {257, 255}, {511, 89}, {300, 300}} {
		check(c[0], c[1])
	}
}

// TestMemStoreChunkBoundary reads entries across the store's chunk
// boundary (2^14 entries) and checks the tree against Verify.
func TestMemStoreChunkBoundary(t *testing.T) {
	ctx := context.Background()
	s := audit.NewMemStore()
	const n = 1<<14 + 5
	for start := 0; start < n; start += 3000 {
		var es [][]byte
		for i := start; i < min(start+3000, n); i++ {
			es = append(es, []byte("entry "+strconv.Itoa(i)))
		}
		if _, err := s.Append(ctx, es, audit.BuildHashes(es)); err != nil {
			t.Fatal(err)
		}
	}
	if size, err := s.Size(ctx); err != nil || size != n {
		t.Fatalf("size %d, %v", size, err)
	}
	es, err := s.ReadEntries(ctx, 1<<14-2, n)
	if err != nil || len(es) != 7 {
		t.Fatalf("read: %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if want := "entry " + strconv.Itoa(1<<14-2+i); string(e) != want {
			t.Fatalf("entry %d: %q, want %q", i, e, want)
		}
	}
	if _, err := s.ReadEntries(ctx, n-1, n+1); err == nil {
		t.Fatal("read beyond the log")
	}
	if _, err := audittest.NewLog(t, s).Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
