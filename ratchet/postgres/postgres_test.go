package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/internal/testenv"
	"github.com/talosgo/talos/ratchet"
	"github.com/talosgo/talos/ratchet/postgres"
	"github.com/talosgo/talos/ratchet/ratchettest"
)

func newStore(t *testing.T) ratchet.SessionStore {
	url := testenv.PostgresURL(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := postgres.New(postgres.Config{DB: pool, TablePrefix: testenv.Unique(t) + "_"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+s.Table())
	})
	return s
}

func TestConformance(t *testing.T) {
	ratchettest.Run(t, newStore)
}

func TestConfig(t *testing.T) {
	if _, err := postgres.New(postgres.Config{}); err == nil {
		t.Fatal("nil DB accepted")
	}
	for _, p := range []string{"Bad", "x;drop table y", "1abc"} {
		if _, err := postgres.New(postgres.Config{DB: (*pgxpool.Pool)(nil), TablePrefix: p}); err == nil {
			t.Fatalf("prefix %q accepted", p)
		}
	}
}

// TestCrashRecovery runs the SIGKILL crash test against PostgreSQL: each
// child process opens the same table by its prefix.
func TestCrashRecovery(t *testing.T) {
	url := testenv.PostgresURL(t)
	var pool *pgxpool.Pool
	prefix := testenv.Unique(t) + "_"
	t.Cleanup(func() {
		if pool == nil {
			return
		}
		if !ratchettest.CrashChild() {
			pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"ratchet_sessions")
		}
		pool.Close()
	})
	ratchettest.RunCrash(t, prefix, func(name string) (ratchet.SessionStore, error) {
		var err error
		if pool, err = pgxpool.New(context.Background(), url); err != nil {
			return nil, err
		}
		prefix = name
		s, err := postgres.New(postgres.Config{DB: pool, TablePrefix: name})
		if err != nil {
			return nil, err
		}
		return s, s.Migrate(context.Background())
	})
}
