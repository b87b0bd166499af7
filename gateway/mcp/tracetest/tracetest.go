// Package tracetest is the conformance test of mcp.TraceStore
// implementations (the durable store of governed-write traces).
package tracetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/mcp"
)

// Run checks store against the TraceStore contract: seq 1 creates a trace
// once (a second trace with the same scope is refused), later entries must
// be exactly the next seq, records load in order with their results,
// ByScope finds the trace, and Open lists the non-terminal traces by id,
// filtered by state and paged. Trace ids and scopes are fresh, so stores
// may be shared between runs; Open is checked only on the traces made
// here.
func Run(t *testing.T, store mcp.TraceStore) {
	ctx := t.Context()
	scope := contracts.NewUUIDv7()
	a, b := contracts.NewUUIDv7(), contracts.NewUUIDv7()
	rec := func(id string, seq int64, state string) mcp.TraceRecord {
		return mcp.TraceRecord{TraceID: id, Seq: seq, State: state, Entry: []byte(`{"seq":` + string(rune('0'+seq)) + `}`)}
	}
	first := rec(a, 1, "PENDING")
	first.Scope = scope
	if err := store.Append(ctx, first); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := store.Append(ctx, first); !errors.Is(err, mcp.ErrTraceConflict) {
		t.Fatalf("create twice: %v", err)
	}
	other := rec(b, 1, "PENDING")
	other.Scope = scope
	if err := store.Append(ctx, other); !errors.Is(err, mcp.ErrTraceConflict) {
		t.Fatalf("a second trace for one scope: %v", err)
	}
	if err := store.Append(ctx, rec(a, 3, "EXECUTING")); !errors.Is(err, mcp.ErrTraceConflict) {
		t.Fatalf("a gap: %v", err)
	}
	if err := store.Append(ctx, rec(contracts.NewUUIDv7(), 2, "AUTHORIZED")); !errors.Is(err, mcp.ErrTraceNotFound) {
		t.Fatalf("seq 2 of no trace: %v", err)
	}
	if err := store.Append(ctx, rec(a, 2, "AUTHORIZED")); err != nil {
		t.Fatal(err)
	}
	if err := store.Append(ctx, rec(a, 2, "DENIED")); !errors.Is(err, mcp.ErrTraceConflict) {
		t.Fatalf("seq 2 again: %v", err)
	}
	if err := store.Append(ctx, rec(b, 1, "PENDING")); err != nil {
		t.Fatal(err)
	}
	if id, err := store.ByScope(ctx, scope); err != nil || id != a {
		t.Fatalf("by scope: %q %v", id, err)
	}
	if _, err := store.ByScope(ctx, contracts.NewUUIDv7()); !errors.Is(err, mcp.ErrTraceNotFound) {
		t.Fatalf("unknown scope: %v", err)
	}
	recs, err := store.Load(ctx, a)
	if err != nil || len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 || recs[0].Scope != scope || recs[1].State != "AUTHORIZED" ||
		!bytes.Equal(recs[1].Entry, rec(a, 2, "").Entry) {
		t.Fatalf("load: %+v %v", recs, err)
	}
	if _, err := store.Load(ctx, contracts.NewUUIDv7()); !errors.Is(err, mcp.ErrTraceNotFound) {
		t.Fatalf("load of no trace: %v", err)
	}
	// Open: both listed (a AUTHORIZED, b PENDING), by id; a state filter
	// and paging; a terminal trace is not listed.
	open := func(state, after string, limit int) []string {
		sums, err := store.Open(ctx, state, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range sums {
			if s.TraceID == a || s.TraceID == b {
				ids = append(ids, s.TraceID+":"+s.State)
			}
		}
		return ids
	}
	// a[:8] sorts before both ids (UUIDv7s of one millisecond share it).
	if got := open("", a[:8], 1000); len(got) != 2 || got[0] != a+":AUTHORIZED" || got[1] != b+":PENDING" {
		t.Fatalf("open: %v", got)
	}
	if got := open("PENDING", a[:8], 1000); len(got) != 1 || got[0] != b+":PENDING" {
		t.Fatalf("open pending: %v", got)
	}
	if got := open("", a, 1000); len(got) != 1 || got[0] != b+":PENDING" {
		t.Fatalf("open after a: %v", got)
	}
	result := rec(a, 3, "EXECUTING")
	if err := store.Append(ctx, result); err != nil {
		t.Fatal(err)
	}
	done := rec(a, 4, "COMPLETED")
	done.Result = []byte(`{"content":[]}`)
	if err := store.Append(ctx, done); err != nil {
		t.Fatal(err)
	}
	if got := open("", a[:8], 1000); len(got) != 1 || got[0] != b+":PENDING" {
		t.Fatalf("open after completion: %v", got)
	}
	recs, err = store.Load(ctx, a)
	if err != nil || len(recs) != 4 || !bytes.Equal(recs[3].Result, done.Result) || recs[3].State != "COMPLETED" {
		t.Fatalf("load with result: %+v %v", recs, err)
	}
}
