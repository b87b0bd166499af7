package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/talosgo/talos/gateway/mcp/postgres"
	"github.com/talosgo/talos/gateway/mcp/tracetest"
)

func TestTraceStoreConformance(t *testing.T) {
	db := pool(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() {
		db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"mcp_tga_traces, "+prefix+"mcp_tga_entries")
	})
	s, err := postgres.NewTraceStore(db, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	tracetest.Run(t, s)
	// A second store over the same tables (another replica) sees the
	// same traces.
	s2, _ := postgres.NewTraceStore(db, prefix)
	x, _ := s.Open(t.Context(), "", "", 100)
	y, err := s2.Open(t.Context(), "", "", 100)
	if err != nil || len(x) != len(y) || len(x) == 0 {
		t.Fatalf("second store: %d vs %d open (%v)", len(y), len(x), err)
	}
}
