package postgres_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/internal/testenv"
)

// The conformance suite with the event queries run through Config.Read: the
// pages are the same, and every query goes through the hook (where a
// read/write split sends it to a replica).
func TestConformanceReadHook(t *testing.T) {
	db := pool(t)
	var reads atomic.Int64
	audittest.Run(t, func(t *testing.T) audit.Store {
		prefix := testenv.Unique(t) + "_"
		dropTables(t, db, prefix)
		s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix,
			Read: func(ctx context.Context, fn func(context.Context, postgres.Querier) error) error {
				reads.Add(1)
				return fn(ctx, db)
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
	if reads.Load() == 0 {
		t.Fatal("no event query went through Config.Read")
	}
}

// A Read hook that fails (no database to read from) fails the query with
// audit.ErrStore, never an empty page.
func TestQueryReadHookFailure(t *testing.T) {
	db := pool(t)
	prefix := testenv.Unique(t) + "_"
	dropTables(t, db, prefix)
	s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix,
		Read: func(ctx context.Context, fn func(context.Context, postgres.Querier) error) error {
			return context.DeadlineExceeded
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query(context.Background(), audit.Query{Limit: 10}); !errors.Is(err, audit.ErrStore) {
		t.Fatalf("Query with a failing read: %v; want a store error", err)
	}
}
