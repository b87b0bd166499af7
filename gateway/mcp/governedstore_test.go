package mcp_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/mcp"
	"github.com/talosgo/talos/gateway/mcp/tracetest"
)

func TestFileTraceStore(t *testing.T) {
	dir := t.TempDir()
	s, err := mcp.OpenFileTraceStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tracetest.Run(t, s)
	// Reopened, the same traces (the index is rebuilt from the files).
	s2, err := mcp.OpenFileTraceStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tracetestReopened(t, s, s2)
}

func tracetestReopened(t *testing.T, a, b mcp.TraceStore) {
	t.Helper()
	x, _ := a.Open(t.Context(), "", "", 1000)
	y, _ := b.Open(t.Context(), "", "", 1000)
	if len(x) != len(y) || len(x) == 0 {
		t.Fatalf("reopened: %d open traces, want %d", len(y), len(x))
	}
	for i := range x {
		if x[i].TraceID != y[i].TraceID || x[i].State != y[i].State || x[i].Seq != y[i].Seq {
			t.Fatalf("reopened: %+v != %+v", y[i], x[i])
		}
	}
}

// TestFileTraceStoreTornLine: a crash mid-append leaves a torn last line,
// cut off at open; any other damage refuses to open.
func TestFileTraceStoreTornLine(t *testing.T) {
	dir := t.TempDir()
	s, err := mcp.OpenFileTraceStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := contracts.NewUUIDv7()
	if err := s.Append(t.Context(), mcp.TraceRecord{TraceID: id, Seq: 1, State: "PENDING", Entry: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, id+".jsonl")
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"trace_id":"` + id + `","seq":2,"sta`)
	f.Close()
	s2, err := mcp.OpenFileTraceStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s2.Load(t.Context(), id)
	if err != nil || len(recs) != 1 {
		t.Fatalf("after a torn line: %v %v", recs, err)
	}
	if err := s2.Append(t.Context(), mcp.TraceRecord{TraceID: id, Seq: 2, State: "AUTHORIZED", Entry: []byte(`{}`)}); err != nil {
		t.Fatalf("append after repair: %v", err)
	}
	os.WriteFile(path, []byte("{\"trace_id\":\"x\"}\n"), 0o600)
	if _, err := mcp.OpenFileTraceStore(dir); contracts.CodeOf(err) != contracts.CodeTGAHashChainBroken {
		t.Fatalf("damaged file: %v", err)
	}
}
