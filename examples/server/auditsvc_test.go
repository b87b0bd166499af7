package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/auditapi"
	"github.com/talosgo/talos/internal/testenv"
)

// The audit service's bodies (gateway/auditapi), under the names the
// server's tests use.
type (
	proofBody  = auditapi.ProofBody
	eventsBody = auditapi.EventsBody
)

// publishCheckpoint publishes a checkpoint now instead of at the next
// interval (tests only).
func (c *core) publishCheckpoint(ctx context.Context) error { return c.audit.Publish(ctx) }

// httpTiles reads the log's hash tiles from GET /tlog/ (tlog.TileReader).
type httpTiles struct {
	au *auditor
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		// C2SP tlog-tiles paths omit the height that x/mod's tlog puts in.
		st, b := h.au.get("/tlog/" + strings.Replace(tile.Path(), "tile/8/", "tile/", 1))
		if st != 200 {
			return nil, fmt.Errorf("tile %s: %d", tile.Path(), st)
		}
		out[i] = b
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func TestAuditService(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	au := newAuditor(t, ts)
	first := au.checkpoint()
	var receipts []decisionBody
	for i := 0; i < 5; i++ {
		receipts = append(receipts, authorize(t, alice, tok.Token, "files", "read"))
	}
	authorize(t, bob, tok.Token, "files", "read") // denied: not the holder

	// Inclusion of each decision under the new checkpoint, which is
	// consistent with the first one (checked by au.checkpoint).
	au.checkpoint()
	for _, d := range receipts {
		if ev := au.verifyIncluded(d.AuditIndex); ev.EventHash != d.EventHash {
			t.Fatalf("entry %d is event %s, want %s", d.AuditIndex, ev.EventHash, d.EventHash)
		}
	}
	// A proof for another leaf does not verify this one.
	var pb proofBody
	au.getJSON(fmt.Sprintf("/v1/audit/proofs/inclusion?index=%d&tree_size=%d", receipts[0].AuditIndex, au.cp.Size), &pb)
	entry1, _ := decodeB64u(pb.EntryB64u)
	if err := audit.VerifyInclusion(parseHashes(t, pb.Proof), au.cp, receipts[1].AuditIndex, audit.LeafHash(entry1)); err == nil {
		t.Fatal("a proof verified for the wrong index")
	}
	if first.Size == au.cp.Size {
		t.Fatal("the log did not grow")
	}

	// Entries (admin) are the exact leaf bytes.
	resp := ts.do(t, "GET", fmt.Sprintf("/v1/audit/entries/%d", receipts[0].AuditIndex), ts.cred, nil)
	var raw json.RawMessage
	if st := decode(t, resp, &raw); st != 200 || !bytes.Equal(bytes.TrimSpace(raw), entry1) {
		t.Fatalf("entry: %d %s", st, raw)
	}
	var eb errBody
	st := decode(t, ts.do(t, "GET", "/v1/audit/entries/1", "", nil), &eb)
	expectErr(t, "entries without admin", st, eb, string(contracts.CodeAuthInvalid))
	st = decode(t, ts.do(t, "GET", "/v1/audit/entries/999999", ts.cred, nil), &eb)
	if st < 400 || eb.Code == "" {
		t.Fatalf("entry beyond the log: %d %+v", st, eb)
	}
	st = decode(t, ts.do(t, "GET", "/v1/audit/proofs/inclusion?index=0&tree_size=999999", "", nil), &eb)
	if st < 400 || eb.Code == "" {
		t.Fatalf("proof beyond the log: %d %+v", st, eb)
	}

	// Events query, newest first, page by page with the cursor, filtered by
	// principal and surface.
	var all []string
	cursor := ""
	for page := 0; ; page++ {
		var body eventsBody
		path := "/v1/audit/events?limit=2&surface_id=" + opAuthorize + "&principal_id=" + alice.did
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if st := decode(t, ts.do(t, "GET", path, ts.cred, nil), &body); st != 200 {
			t.Fatalf("events page %d: %d", page, st)
		}
		for _, raw := range body.Events {
			var ev audit.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Principal.PrincipalID != alice.did || ev.SurfaceID != opAuthorize {
				t.Fatalf("filter leaked %+v", ev)
			}
			all = append(all, ev.EventHash)
		}
		if body.Next == "" {
			break
		}
		cursor = body.Next
		if page > 5 {
			t.Fatal("cursor does not advance")
		}
	}
	if len(all) != 5 || all[0] != receipts[4].EventHash || all[4] != receipts[0].EventHash {
		t.Fatalf("events %v", all)
	}
	st = decode(t, ts.do(t, "GET", "/v1/audit/events?cursor=garbage", ts.cred, nil), &eb)
	if st != http.StatusBadRequest || eb.Code == "" {
		t.Fatalf("bad cursor: %d %+v", st, eb)
	}

	// An evidence bundle of the decisions verifies offline with the key.
	resp = ts.do(t, "GET", fmt.Sprintf("/v1/audit/bundle?start=%d&end=%d", receipts[0].AuditIndex, receipts[4].AuditIndex+1), ts.cred, nil)
	bundle, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("bundle: %d %s", resp.StatusCode, bundle)
	}
	nv, err := note.NewVerifier(au.vkey)
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := audit.VerifyBundle(bundle, nv)
	if err != nil || len(evs) != 5 || evs[4].EventHash != receipts[4].EventHash {
		t.Fatalf("bundle does not verify: %d events, %v", len(evs), err)
	}
	for _, p := range []string{"/v1/audit/bundle?start=3&end=3", "/v1/audit/bundle?start=0&end=20000", "/v1/audit/bundle?start=0"} {
		checkErrorBody(t, p, ts.do(t, "GET", p, ts.cred, nil))
	}
	checkErrorBody(t, "bundle without admin", ts.do(t, "GET", "/v1/audit/bundle?start=0&end=1", "", nil))

	// The tiles: a standard tlog client recomputes the tree hash of the
	// published checkpoint from the served tiles (published here at once,
	// not at the next interval).
	if err := ts.core.publishCheckpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, note := au.get("/tlog/checkpoint")
	if st != 200 {
		t.Fatalf("tlog checkpoint: %d", st)
	}
	cp, err := audit.VerifyCheckpoint(note, au.vkey)
	if err != nil {
		t.Fatal(err)
	}
	th, err := tlog.TreeHash(int64(cp.Size), tlog.TileHashReader(cp.Tree(), httpTiles{au}))
	if err != nil || th != cp.Hash {
		t.Fatalf("tree hash from the tiles (size %d): %v %v", cp.Size, th, err)
	}
	// The entry bundle holds the leaves.
	st, entries := au.get("/tlog/tile/entries/000.p/" + fmt.Sprint(cp.Size))
	if st != 200 || !bytes.Contains(entries, entry1) {
		t.Fatalf("entry bundle: %d, %d bytes", st, len(entries))
	}
	if st, _ := au.get("/tlog/talos-journal"); st != http.StatusNotFound {
		t.Fatalf("journal is served: %d", st)
	}
	for _, p := range []string{"/tlog/talos-lock", "/tlog/tile/", "/tlog/tile/0/", "/tlog/tile/../../master.key"} {
		if st, _ := au.get(p); st != http.StatusNotFound {
			t.Fatalf("%s is served: %d", p, st)
		}
	}
}

// TestAuditTilesPostgres: with the PostgreSQL audit store (-postgres mode)
// the C2SP tiles are served too: /tlog/checkpoint answers, and a tlog client
// recomputes its tree hash from the served tiles (it answered 404 before
// gateway/auditapi).
func TestAuditTilesPostgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	ts := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	for range 3 {
		authorize(t, alice, tok.Token, "files", "read")
	}
	if err := ts.core.publishCheckpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	au := newAuditor(t, ts)
	st, note := au.get("/tlog/checkpoint")
	if st != 200 {
		t.Fatalf("/tlog/checkpoint with PostgreSQL: %d %s", st, note)
	}
	cp, err := audit.VerifyCheckpoint(note, au.vkey)
	if err != nil || cp.Size < 3 {
		t.Fatalf("tlog checkpoint: %v (size %d)", err, cp.Size)
	}
	th, err := tlog.TreeHash(int64(cp.Size), tlog.TileHashReader(cp.Tree(), httpTiles{au}))
	if err != nil || th != cp.Hash {
		t.Fatalf("tree hash from the tiles (size %d): %v %v", cp.Size, th, err)
	}
	st, entries := au.get(fmt.Sprintf("/tlog/tile/entries/000.p/%d", cp.Size))
	if last, _ := ts.core.log.Entry(t.Context(), cp.Size-1); st != 200 || !bytes.HasSuffix(entries, last) {
		t.Fatalf("entry bundle: %d, %d bytes", st, len(entries))
	}
	au.cred = ""
	if st, _ := au.get(fmt.Sprintf("/tlog/tile/entries/000.p/%d", cp.Size)); st != http.StatusUnauthorized {
		t.Fatalf("anonymous entry bundle: %d", st)
	}
}
