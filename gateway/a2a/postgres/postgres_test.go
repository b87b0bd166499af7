package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/a2a/a2atest"
	"github.com/talosgo/talos/gateway/a2a/postgres"
)

// pool connects to $TALOS_TEST_POSTGRES_URL; without it the test skips,
// or fails under TALOS_REQUIRE_SERVICES=1 (the root module's
// internal/testenv rule, copied).
func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	u := os.Getenv("TALOS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal("TALOS_TEST_POSTGRES_URL is not set and TALOS_REQUIRE_SERVICES=1")
		}
		t.Skip("TALOS_TEST_POSTGRES_URL is not set")
	}
	p, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newStore(t *testing.T, db *pgxpool.Pool, prefix string) *postgres.TaskStore {
	t.Helper()
	s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func uniquePrefix(t *testing.T, db *pgxpool.Pool) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() {
		db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"a2a_tasks, "+prefix+"a2a_tasks_push, "+prefix+"a2a_objects, "+prefix+"a2a_events, "+prefix+"a2a_frames")
	})
	return prefix
}

func TestConformance(t *testing.T) {
	db := pool(t)
	a2atest.TestTaskStore(t, func(t *testing.T) a2a.TaskStore { return newStore(t, db, uniquePrefix(t, db)) })
}

// TestRestart: a task stored through one pool is served, at its version,
// by a store on a new pool (a restarted server).
func TestRestart(t *testing.T) {
	db := pool(t)
	prefix := uniquePrefix(t, db)
	s := newStore(t, db, prefix)
	tk := &a2a.Task{ID: "t1", ContextID: "c", Owner: "o", Version: 1, Status: a2a.TaskStatus{State: a2a.TaskWorking, Timestamp: "2026-03-13T12:00:00Z"}}
	if err := s.CreateTask(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	db2, err := pgxpool.New(context.Background(), os.Getenv("TALOS_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	got, err := newStore(t, db2, prefix).GetTask(context.Background(), "t1")
	if err != nil || got.Status.State != a2a.TaskWorking || got.Version != 1 {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	if _, err := postgres.New(postgres.Config{DB: db, TablePrefix: "Bad-Prefix"}); err == nil {
		t.Fatal("bad prefix accepted")
	}
}

func TestRelayConformance(t *testing.T) {
	db := pool(t)
	a2atest.Run(t, func(t *testing.T) a2a.Store {
		s, err := postgres.NewStore(postgres.Config{DB: db, TablePrefix: uniquePrefix(t, db)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPushConfigConformance(t *testing.T) {
	db := pool(t)
	a2atest.TestPushConfigStore(t, func(t *testing.T) a2a.PushConfigStore { return newStore(t, db, uniquePrefix(t, db)) })
}
