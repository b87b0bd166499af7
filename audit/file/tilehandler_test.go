package file_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
)

// TestTileHandlerMatchesFileHandler checks audit.NewTileHandler against the
// file store's own Handler byte for byte (status, body, Cache-Control,
// Content-Type, Allow), over the file store itself and over a MemStore
// holding the same log, at several points: a published checkpoint with the
// log grown past it, a tile that became full after the checkpoint, and a
// new checkpoint.
func TestTileHandlerMatchesFileHandler(t *testing.T) {
	ctx := context.Background()
	fs := open(t, t.TempDir(), file.Config{NoSyncUnsafe: true})
	defer fs.Close()
	mem := audit.NewMemStore()
	logs := []*audit.Log{audittest.NewLog(t, fs), audittest.NewLog(t, mem)}
	next := 0
	grow := func(to int) {
		for ; next < to; next++ {
			for _, l := range logs {
				if _, err := l.Append(ctx, audittest.Event(next)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	publish := func() {
		for _, l := range logs {
			if _, err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := fs.Handler()
	got := map[string]http.Handler{"file store": audit.NewTileHandler(fs), "memory store": audit.NewTileHandler(mem)}
	paths := []string{
		"/checkpoint", "/tile/0/000", "/tile/0/001", "/tile/0/002", "/tile/0/003",
		"/tile/0/001.p/44", "/tile/0/001.p/43", "/tile/0/001.p/144", "/tile/0/002.p/8", "/tile/0/003.p/32",
		"/tile/1/000.p/1", "/tile/1/000.p/2", "/tile/1/000.p/3", "/tile/1/000", "/tile/2/000.p/1",
		"/tile/entries/000", "/tile/entries/001", "/tile/entries/002", "/tile/entries/001.p/44",
		"/tile/entries/001.p/45", "/tile/entries/002.p/8", "/tile/entries/003.p/32",
		"/tile/0/x000/000", "/tile/0/1", "/tile/0/000.p/256", "/tile/0/000.p/0", "/tile/64/000",
		"/tile/0/x001/000", "/talos-journal", "/talos-lock", "/tile/../talos-journal", "/", "/tile/",
	}
	check := func(phase string) {
		t.Helper()
		for _, method := range []string{"GET", "HEAD", "POST"} {
			for _, p := range paths {
				wr := httptest.NewRecorder()
				want.ServeHTTP(wr, httptest.NewRequest(method, p, nil))
				for name, h := range got {
					gr := httptest.NewRecorder()
					h.ServeHTTP(gr, httptest.NewRequest(method, p, nil))
					if gr.Code != wr.Code || !bytes.Equal(gr.Body.Bytes(), wr.Body.Bytes()) {
						t.Fatalf("%s, %s %s %s: %d (%d bytes), file handler %d (%d bytes)", phase, name, method, p, gr.Code, gr.Body.Len(), wr.Code, wr.Body.Len())
					}
					for _, hd := range []string{"Cache-Control", "Content-Type", "Allow"} {
						if gr.Header().Get(hd) != wr.Header().Get(hd) {
							t.Fatalf("%s, %s %s %s: %s %q, file handler %q", phase, name, method, p, hd, gr.Header().Get(hd), wr.Header().Get(hd))
						}
					}
				}
			}
		}
	}
	check("empty log")
	grow(300)
	publish()
	grow(400)
	check("checkpoint at 300, log at 400")
	grow(520)
	check("tile 1 full after the checkpoint")
	publish()
	check("checkpoint at 520")
	grow(800)
	publish()
	check("checkpoint at 800")
	// Something was served: the comparison is not between two 404s.
	wr := httptest.NewRecorder()
	got["memory store"].ServeHTTP(wr, httptest.NewRequest("GET", fmt.Sprintf("/tile/entries/003.p/%d", 800-768), nil))
	if wr.Code != 200 || wr.Body.Len() == 0 {
		t.Fatalf("partial entry bundle: %d", wr.Code)
	}
}

// failingStore fails every read.
type failingStore struct{ audit.Store }

func (failingStore) Size(context.Context) (uint64, error) { return 0, audit.StoreError("down", nil) }
func (failingStore) Checkpoint(context.Context) ([]byte, error) {
	return nil, audit.StoreError("down", nil)
}

func TestTileHandlerStoreFailure(t *testing.T) {
	h := audit.NewTileHandler(failingStore{audit.NewMemStore()})
	for _, p := range []string{"/checkpoint", "/tile/0/000", "/tile/entries/000.p/3"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s with a failing store: %d %q", p, w.Code, w.Header().Get("Cache-Control"))
		}
	}
}

// TestHandlerNotFoundNotCached: a tile that is not there yet answers 404
// without the immutable Cache-Control of full tiles (a shared cache would
// keep the 404 for a year).
func TestHandlerNotFoundNotCached(t *testing.T) {
	s := open(t, t.TempDir(), file.Config{NoSyncUnsafe: true})
	defer s.Close()
	for _, h := range []http.Handler{s.Handler(), audit.NewTileHandler(s)} {
		for _, p := range []string{"/tile/0/000", "/tile/entries/000.p/3", "/checkpoint"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
			if w.Code != 404 || w.Header().Get("Cache-Control") != "" {
				t.Fatalf("%s: %d with Cache-Control %q", p, w.Code, w.Header().Get("Cache-Control"))
			}
		}
	}
}

// FuzzTileHandlerAgrees: for any request path, audit.NewTileHandler over a
// MemStore answers exactly what the file store's Handler answers over the
// same log (status, body, Cache-Control), with a checkpoint at 300 entries
// and the log at 400.
func FuzzTileHandlerAgrees(f *testing.F) {
	for _, p := range []string{"/checkpoint", "/tile/0/000", "/tile/0/001.p/44", "/tile/1/000.p/1", "/tile/entries/001.p/44",
		"/tile/entries/000", "/tile/0/x000/000", "/tile/63/000", "/tile/0/000.p/255", "/talos-journal", "/tile//0/000", "/tile/0/001.p/144"} {
		f.Add(p)
	}
	ctx := context.Background()
	fs := open(f, f.TempDir(), file.Config{NoSyncUnsafe: true})
	defer fs.Close()
	mem := audit.NewMemStore()
	for _, s := range []audit.Store{fs, mem} {
		l := audittest.NewLog(f, s)
		for i := range 400 {
			if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
				f.Fatal(err)
			}
			if i == 299 {
				if _, err := l.Checkpoint(ctx); err != nil {
					f.Fatal(err)
				}
			}
		}
	}
	want, got := fs.Handler(), audit.NewTileHandler(mem)
	f.Fuzz(func(t *testing.T, path string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = "/" + path
		wr, gr := httptest.NewRecorder(), httptest.NewRecorder()
		want.ServeHTTP(wr, r)
		got.ServeHTTP(gr, r)
		if gr.Code != wr.Code || !bytes.Equal(gr.Body.Bytes(), wr.Body.Bytes()) || gr.Header().Get("Cache-Control") != wr.Header().Get("Cache-Control") {
			t.Fatalf("%q: tile handler %d %q, file handler %d %q", path, gr.Code, gr.Header().Get("Cache-Control"), wr.Code, wr.Header().Get("Cache-Control"))
		}
	})
}

// countingStore counts the hash reads that reach the store.
type countingStore struct {
	audit.Store
	reads atomic.Int64
}

func (c *countingStore) ReadHashes(ctx context.Context, idx []int64) ([]audit.Hash, error) {
	c.reads.Add(1)
	return c.Store.ReadHashes(ctx, idx)
}

// TestTileHandlerCachesFullTiles: a full tile read twice reaches the store
// once; a partial tile is read each time (it is replaced when the
// checkpoint moves), and both answers stay the same bytes.
func TestTileHandlerCachesFullTiles(t *testing.T) {
	ctx := context.Background()
	cs := &countingStore{Store: audit.NewMemStore()}
	l := audittest.NewLog(t, cs)
	for i := range 300 {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	h := audit.NewTileHandler(cs)
	get := func(p string) []byte {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d", p, w.Code)
		}
		return w.Body.Bytes()
	}
	for _, p := range []string{"/tile/0/000", "/tile/0/001.p/44"} {
		first := get(p)
		before := cs.reads.Load()
		if again := get(p); !bytes.Equal(again, first) {
			t.Fatalf("%s changed between two reads", p)
		}
		reads := cs.reads.Load() - before
		if full := !strings.Contains(p, ".p/"); full && reads != 0 || !full && reads == 0 {
			t.Fatalf("%s: %d store reads on the second request", p, reads)
		}
	}
}

// BenchmarkTileHandler serves one partial hash tile and one full entry
// bundle: the file store's Handler (a file read) beside audit.NewTileHandler
// over a MemStore (computed from the store; full tiles cached).
func BenchmarkTileHandler(b *testing.B) {
	ctx := context.Background()
	fs := open(b, b.TempDir(), file.Config{NoSyncUnsafe: true})
	defer fs.Close()
	mem := audit.NewMemStore()
	for _, s := range []audit.Store{fs, mem} {
		l := audittest.NewLog(b, s)
		for i := range 300 {
			if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := l.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range []string{"/tile/0/001.p/44", "/tile/entries/000"} {
		for _, hc := range []struct {
			name string
			h    http.Handler
		}{{"file_handler", fs.Handler()}, {"tile_handler_mem", audit.NewTileHandler(mem)}} {
			b.Run(strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_")+"/"+hc.name, func(b *testing.B) {
				b.ReportAllocs()
				r := httptest.NewRequest("GET", p, nil)
				for b.Loop() {
					w := httptest.NewRecorder()
					hc.h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatal(w.Code)
					}
				}
			})
		}
	}
}
