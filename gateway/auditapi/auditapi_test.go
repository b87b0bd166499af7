package auditapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	auditfile "github.com/talosgo/talos/audit/file"
	auditpg "github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/auditapi"
)

// stores returns the audit stores the tests run over: memory, file and,
// with $TALOS_TEST_POSTGRES_URL, PostgreSQL (required under
// TALOS_REQUIRE_SERVICES=1, the root module's internal/testenv rule).
func stores(t *testing.T) map[string]func(t *testing.T) audit.Store {
	m := map[string]func(t *testing.T) audit.Store{
		"memory": func(*testing.T) audit.Store { return audit.NewMemStore() },
		"file": func(t *testing.T) audit.Store {
			s, err := auditfile.Open(t.Context(), auditfile.Config{Dir: t.TempDir(), NoSyncUnsafe: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	u := os.Getenv("TALOS_TEST_POSTGRES_URL")
	if u == "" && os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
		t.Fatal("TALOS_TEST_POSTGRES_URL is not set and TALOS_REQUIRE_SERVICES=1")
	}
	if u != "" {
		m["postgres"] = func(t *testing.T) audit.Store {
			pool, err := pgxpool.New(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 6)
			rand.Read(b)
			prefix := "t" + hex.EncodeToString(b) + "_"
			t.Cleanup(func() {
				for _, tbl := range []string{"audit_head", "audit_entries", "audit_hashes"} {
					pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+tbl)
				}
				pool.Close()
			})
			s, err := auditpg.New(auditpg.Config{DB: pool, TablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			return s
		}
	} else {
		t.Log("TALOS_TEST_POSTGRES_URL is not set: the PostgreSQL store is not tested")
	}
	return m
}

type fixture struct {
	t     *testing.T
	log   *audit.Log
	store audit.Store
	h     *auditapi.Handler
	mux   *http.ServeMux
	nv    note.Verifier
}

func newFixture(t *testing.T, store audit.Store, public bool) *fixture {
	t.Helper()
	_, nv := audittest.SignerVerifier(t)
	l := audittest.NewLog(t, store)
	h, err := auditapi.New(auditapi.Config{
		Log: l, Store: store, Public: public,
		IsReader: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer reader" },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return &fixture{t: t, log: l, store: store, h: h, mux: mux, nv: nv}
}

func (f *fixture) get(path string, reader bool) (*http.Response, []byte) {
	f.t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if reader {
		r.Header.Set("Authorization", "Bearer reader")
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w.Result(), w.Body.Bytes()
}

func (f *fixture) getJSON(path string, reader bool, v any) int {
	f.t.Helper()
	resp, body := f.get(path, reader)
	if err := json.Unmarshal(body, v); err != nil {
		f.t.Fatalf("%s: %d %q: %v", path, resp.StatusCode, body, err)
	}
	return resp.StatusCode
}

func (f *fixture) appendN(from, to int) {
	f.t.Helper()
	for i := from; i < to; i++ {
		if _, err := f.log.Append(f.t.Context(), audittest.Event(i)); err != nil {
			f.t.Fatal(err)
		}
	}
}

type errBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (f *fixture) wantErr(path string, reader bool, status int, code string) {
	f.t.Helper()
	resp, body := f.get(path, reader)
	var e errBody
	if json.Unmarshal(body, &e) != nil || resp.StatusCode != status || e.Code != code {
		f.t.Fatalf("%s: %d %s, want %d %s", path, resp.StatusCode, body, status, code)
	}
	if status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		f.t.Fatalf("%s: 401 without WWW-Authenticate", path)
	}
}

// tiles reads hash tiles through GET /tlog/ (a tlog.TileReader).
type tiles struct{ f *fixture }

func (tiles) Height() int { return 8 }
func (tr tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		// C2SP tlog-tiles paths omit the height that x/mod's tlog puts in.
		resp, b := tr.f.get("/tlog/"+strings.Replace(tile.Path(), "tile/8/", "tile/", 1), false)
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("tile %s: %d", tile.Path(), resp.StatusCode)
		}
		out[i] = b
	}
	return out, nil
}
func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func TestService(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) { testService(t, newFixture(t, newStore(t), false)) })
	}
}

func testService(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.appendN(0, 2)
	_, note1 := f.get("/v1/audit/checkpoint", false)
	cp1, err := audit.OpenCheckpoint(note1, f.nv)
	if err != nil || cp1.Size != 2 {
		t.Fatalf("checkpoint: %v %+v", err, cp1)
	}
	f.appendN(2, 300)
	resp, note2 := f.get("/v1/audit/checkpoint", false)
	cp, err := audit.OpenCheckpoint(note2, f.nv)
	if err != nil || cp.Size != 300 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("checkpoint: %v %+v %q", err, cp, resp.Header.Get("Cache-Control"))
	}

	// Inclusion: public proof, entry bytes to readers only.
	for _, i := range []uint64{0, 1, 257, 299} {
		var pb, pr auditapi.ProofBody
		if st := f.getJSON(fmt.Sprintf("/v1/audit/proofs/inclusion?index=%d&tree_size=%d", i, cp.Size), false, &pb); st != 200 || pb.EntryB64u != "" {
			t.Fatalf("inclusion %d anonymous: %d %+v", i, st, pb)
		}
		f.getJSON(fmt.Sprintf("/v1/audit/proofs/inclusion?index=%d&tree_size=%d", i, cp.Size), true, &pr)
		entry, err := contracts.DecodeBase64URL(pr.EntryB64u)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := f.log.Entry(ctx, i)
		if !bytes.Equal(entry, want) || audit.LeafHash(entry).String() != pb.LeafHash {
			t.Fatalf("inclusion %d: entry or leaf hash differs", i)
		}
		if err := audit.VerifyInclusion(proofOf(t, pb.Proof), cp, i, audit.LeafHash(entry)); err != nil {
			t.Fatalf("inclusion %d does not verify: %v", i, err)
		}
		if i > 0 {
			if err := audit.VerifyInclusion(proofOf(t, pb.Proof), cp, i-1, audit.LeafHash(entry)); err == nil {
				t.Fatalf("proof of %d verified for %d", i, i-1)
			}
		}
	}
	var cb auditapi.ProofBody
	if st := f.getJSON(fmt.Sprintf("/v1/audit/proofs/consistency?old_size=%d&tree_size=%d", cp1.Size, cp.Size), false, &cb); st != 200 {
		t.Fatalf("consistency: %d", st)
	}
	if err := audit.VerifyConsistency(proofOf(t, cb.Proof), cp1, cp); err != nil {
		t.Fatalf("consistency does not verify: %v", err)
	}

	// Entries, events, bundles: readers only.
	f.wantErr("/v1/audit/entries/1", false, 401, string(contracts.CodeAuthInvalid))
	f.wantErr("/v1/audit/events", false, 401, string(contracts.CodeAuthInvalid))
	f.wantErr("/v1/audit/bundle?start=0&end=1", false, 401, string(contracts.CodeAuthInvalid))
	resp, body := f.get("/v1/audit/entries/7", true)
	if want, _ := f.log.Entry(ctx, 7); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("entry 7: %d", resp.StatusCode)
	}
	var seen []uint64
	cursor := ""
	for page := 0; ; page++ {
		var eb auditapi.EventsBody
		path := "/v1/audit/events?limit=40&principal_id=p-1&surface_id=admin.write"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if st := f.getJSON(path, true, &eb); st != 200 {
			t.Fatalf("events page %d: %d", page, st)
		}
		seen = append(seen, eb.Index...)
		if eb.Next == "" {
			break
		}
		cursor = eb.Next
		if page > 10 {
			t.Fatal("the cursor does not advance")
		}
	}
	// p-1 is i%3 == 1, admin.write is i odd: i ≡ 1 (mod 6), newest first.
	if len(seen) != 50 || seen[0] != 295 || seen[49] != 1 {
		t.Fatalf("events %d, first %v", len(seen), seen[:min(3, len(seen))])
	}
	resp, body = f.get("/v1/audit/bundle?start=10&end=20", true)
	if resp.StatusCode != 200 {
		t.Fatalf("bundle: %d %s", resp.StatusCode, body)
	}
	if evs, _, err := audit.VerifyBundle(body, f.nv); err != nil || len(evs) != 10 {
		t.Fatalf("bundle does not verify: %d events, %v", len(evs), err)
	}
	for _, p := range []string{
		"/v1/audit/proofs/inclusion?index=0&tree_size=999999", "/v1/audit/proofs/inclusion?index=x&tree_size=1",
		"/v1/audit/proofs/consistency?old_size=5", "/v1/audit/entries/-1", "/v1/audit/entries/999999",
		"/v1/audit/events?cursor=garbage", "/v1/audit/events?limit=0", "/v1/audit/events?since=yesterday",
		"/v1/audit/bundle?start=3&end=3", "/v1/audit/bundle?start=0&end=20000", "/v1/audit/bundle?start=0",
	} {
		resp, body := f.get(p, true)
		var e errBody
		if json.Unmarshal(body, &e) != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 || contracts.HTTPStatus(contracts.Code(e.Code)) != resp.StatusCode {
			t.Fatalf("%s: %d %s, want a contract refusal", p, resp.StatusCode, body)
		}
	}

	// The tiles, for every store: the published checkpoint, and a standard
	// tlog client recomputing its tree hash from the served hash tiles.
	if err := f.h.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	resp, tnote := f.get("/tlog/checkpoint", false)
	tcp, err := audit.OpenCheckpoint(tnote, f.nv)
	if err != nil || resp.StatusCode != 200 || tcp.Size != 300 {
		t.Fatalf("/tlog/checkpoint: %d %v", resp.StatusCode, err)
	}
	th, err := tlog.TreeHash(int64(tcp.Size), tlog.TileHashReader(tcp.Tree(), tiles{f}))
	if err != nil || th != tcp.Hash {
		t.Fatalf("tree hash from the tiles: %v %v", th, err)
	}
	// Entry bundles: readers only, private.
	f.wantErr("/tlog/tile/entries/000", false, 401, string(contracts.CodeAuthInvalid))
	resp, bundle := f.get("/tlog/tile/entries/001.p/44", true)
	e299, _ := f.log.Entry(ctx, 299)
	if resp.StatusCode != 200 || !bytes.HasSuffix(bundle, e299) || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "private") {
		t.Fatalf("entry bundle: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	// The mux redirects a dot-dot path to its clean form, outside /tlog/.
	if resp, _ := f.get("/tlog/tile/../../master.key", true); resp.StatusCode == 200 {
		t.Fatal("a dot-dot path was served")
	}
	for _, p := range []string{"/tlog/talos-journal", "/tlog/talos-lock", "/tlog/tile/", "/tlog/tile/0/", "/tlog/tile/0/002",
		"/tlog/tile/0/001.p/45", "/tlog/tile%2Fentries/000", "/tlog/tile/entries%2F000"} {
		resp, body := f.get(p, true)
		var e errBody
		if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Code != string(contracts.CodeNotFound) {
			t.Fatalf("%s: %d %s, want a contract 404", p, resp.StatusCode, body)
		}
	}
}

func proofOf(t *testing.T, hs []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(hs))
	for i, s := range hs {
		h, err := tlog.ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

// TestPublic: a public log serves entry bytes to anyone, entry bundles with
// Cache-Control public.
func TestPublic(t *testing.T) {
	f := newFixture(t, audit.NewMemStore(), true)
	f.appendN(0, 3)
	if err := f.h.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.get("/v1/audit/entries/0", false); resp.StatusCode != 200 {
		t.Fatalf("public entry: %d", resp.StatusCode)
	}
	var pb auditapi.ProofBody
	if f.getJSON("/v1/audit/proofs/inclusion?index=0&tree_size=3", false, &pb); pb.EntryB64u == "" {
		t.Fatal("public proof without the entry")
	}
	resp, _ := f.get("/tlog/tile/entries/000.p/3", false)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "public") {
		t.Fatalf("public entry bundle: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

// TestCheckpointWritesNothing: GET /v1/audit/checkpoint of a grown log
// signs the new size without publishing it.
func TestCheckpointWritesNothing(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, audit.NewMemStore(), false)
	f.appendN(0, 3)
	if err := f.h.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _ := f.store.Checkpoint(ctx)
	f.appendN(3, 5)
	_, body := f.get("/v1/audit/checkpoint", false)
	cp, err := audit.OpenCheckpoint(body, f.nv)
	if err != nil || cp.Size != 5 {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	if _, again := f.get("/v1/audit/checkpoint", false); !bytes.Equal(again, body) {
		t.Fatal("a second GET of an unchanged log signed another note")
	}
	if now, _ := f.store.Checkpoint(ctx); !bytes.Equal(now, stored) {
		t.Fatal("GET /v1/audit/checkpoint wrote a checkpoint to the store")
	}
}

// TestPublisher runs the worker until the store's checkpoint covers the
// log, then ends its context.
func TestPublisher(t *testing.T) {
	f := newFixture(t, audit.NewMemStore(), false)
	f.appendN(0, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.h.Publisher(time.Millisecond, func(err error) { t.Error(err) })(ctx) }()
	for ; ; time.Sleep(time.Millisecond) {
		raw, err := f.store.Checkpoint(t.Context())
		if err == nil {
			if cp, err := audit.OpenCheckpoint(raw, f.nv); err == nil && cp.Size == 4 {
				break
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// failing fails every read of the size and checkpoint.
type failing struct{ audit.Store }

func (failing) Size(context.Context) (uint64, error) { return 0, audit.StoreError("down", nil) }
func (failing) Checkpoint(context.Context) ([]byte, error) {
	return nil, audit.StoreError("down", nil)
}

// TestStoreFailureDenies: a failing store is a retryable INTERNAL answer
// naming no cause, on the API and on the tiles.
func TestStoreFailureDenies(t *testing.T) {
	mem := audit.NewMemStore()
	l := audittest.NewLog(t, mem)
	h, err := auditapi.New(auditapi.Config{Log: l, Store: failing{mem}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	for _, p := range []string{"/v1/audit/checkpoint", "/tlog/checkpoint", "/tlog/tile/0/000"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		body, _ := io.ReadAll(w.Result().Body)
		var e errBody
		if w.Code != 500 || json.Unmarshal(body, &e) != nil || e.Code != string(contracts.CodeInternal) || strings.Contains(string(body), "down") {
			t.Fatalf("%s: %d %s", p, w.Code, body)
		}
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := auditapi.New(auditapi.Config{}); err == nil {
		t.Fatal("New without a log")
	}
}
