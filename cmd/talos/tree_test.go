package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
)

// memSource serves hash tiles built by golang.org/x/mod/sumdb/tlog, the
// reference for the tile layout, for trees too large to build from events
// in a unit test.
type memSource map[string][]byte

func (m memSource) String() string { return "memory" }

func (m memSource) read(_ context.Context, path string, limit int) ([]byte, error) {
	b, ok := m[path]
	if !ok {
		return nil, errTileNotFound
	}
	return b, nil
}

// tlogTree returns the stored hashes of a tree of n synthetic leaves.
func tlogTree(t *testing.T, n int64) []tlog.Hash {
	t.Helper()
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := int64(0); i < n; i++ {
		var leaf [8]byte
		binary.BigEndian.PutUint64(leaf[:], uint64(i))
		hs, err := tlog.StoredHashesForRecordHash(i, sha256.Sum256(leaf[:]), r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	return stored
}

// tilesOf publishes the tiles of the tree of size n as a C2SP log would.
func tilesOf(t *testing.T, stored []tlog.Hash, n int64, into memSource) audit.Checkpoint {
	t.Helper()
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for _, tile := range tlog.NewTiles(tileHeight, 0, n) {
		data, err := tlog.ReadTileData(tile, r)
		if err != nil {
			t.Fatal(err)
		}
		into["tile/"+strings.TrimPrefix(tile.Path(), "tile/8/")] = data
	}
	root, err := tlog.TreeHash(n, r)
	if err != nil {
		t.Fatal(err)
	}
	return audit.Checkpoint{Origin: "mem", Size: uint64(n), Hash: root}
}

func TestVerifyTreeLarge(t *testing.T) {
	const n = 1<<16 + 300 // level 2: one partial hash; level 1: a full tile and a partial
	stored := tlogTree(t, n)
	src := memSource{}
	cp := tilesOf(t, stored, n, src)
	if _, ok := src["tile/2/000.p/1"]; !ok {
		t.Fatal("no level-2 tile: the test does not cover what it means to")
	}
	res, err := verifyTree(context.Background(), src, cp, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 258 + 2 + 1; res.tiles != want { // 257 full and one partial level-0, 2 level-1, 1 level-2
		t.Fatalf("%d tiles compared, want %d", res.tiles, want)
	}
	// Consistency with an older checkpoint, from the same tiles (the
	// partial tiles of the old size are gone, as on a real log).
	old := tilesOf(t, stored, 1000, memSource{})
	if err := checkConsistency(context.Background(), src, old, cp); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tile/2/000.p/1", "tile/1/000", "tile/1/001.p/1", "tile/0/100"} {
		bad := memSource{}
		for k, v := range src {
			bad[k] = v
		}
		b := append([]byte(nil), src[p]...)
		b[0] ^= 1
		bad[p] = b
		_, err := verifyTree(context.Background(), bad, cp, true, nil)
		var ce *cliError
		if !errors.As(err, &ce) || ce.code != exitFailed {
			t.Errorf("tampered %s: %v", p, err)
		}
		if p != "tile/0/100" && !strings.Contains(err.Error(), p) {
			t.Errorf("tampered %s: the message does not name it: %v", p, err)
		}
	}
	// A tile the consistency proof reads, tampered: not a pass.
	bad := memSource{}
	for k, v := range src {
		bad[k] = v
	}
	b := append([]byte(nil), src["tile/0/003"]...)
	b[(1000-768)*32] ^= 1
	bad["tile/0/003"] = b
	if err := checkConsistency(context.Background(), bad, old, cp); err == nil {
		t.Fatal("a tampered proof tile passed")
	}
}

func TestCompactRange(t *testing.T) {
	stored := tlogTree(t, 300)
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var c compactRange
	if c.root() != sha256.Sum256(nil) {
		t.Fatal("empty root")
	}
	for i := int64(0); i < 300; i++ {
		c.push(stored[tlog.StoredHashIndex(0, i)])
		want, err := tlog.TreeHash(i+1, r)
		if err != nil {
			t.Fatal(err)
		}
		if c.root() != want {
			t.Fatalf("size %d: root differs from tlog.TreeHash", i+1)
		}
	}
}
