package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/a2a/a2atest"
	"github.com/talosgo/talos/gateway/a2a/postgres"
	"github.com/talosgo/talos/gateway/pgsplit"

	"github.com/talosgo/talos/internal/testenv"
)

// replicaPool connects to $TALOS_TEST_POSTGRES_REPLICA_URL, a streaming
// standby of $TALOS_TEST_POSTGRES_URL (.ci/pg-replica.sh); without it the
// test skips, or fails under TALOS_REQUIRE_SERVICES=1.
func replicaPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), testenv.PostgresReplicaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// splitReads returns a Config.Read over a read/write split on the real
// standby that makes every read read-your-writes for one caller (the
// conformance suite): it records the primary's position first, so the
// replica serves the read only once it has everything written before. It
// counts the reads in calls.
func splitReads(t *testing.T, primary *pgxpool.Pool, calls *atomic.Int64) (postgres.ReadFunc, *pgsplit.DB) {
	db, err := pgsplit.New(pgsplit.Config{Primary: primary, Replica: replicaPool(t)})
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, fn func(context.Context, postgres.Querier) error) error {
		calls.Add(1)
		ctx = pgsplit.WithCaller(ctx, "suite")
		if err := db.Wrote(ctx); err != nil {
			return err
		}
		return db.Read(ctx, func(ctx context.Context, q pgsplit.Querier) error { return fn(ctx, q) })
	}, db
}

// checkSplit: every read through the hook was decided by the replica's
// position (served there, or on the primary because it lagged), none fell
// back on a failure.
func checkSplit(t *testing.T, db *pgsplit.DB, calls int64) {
	t.Helper()
	s := db.Stats()
	t.Logf("reads %d: %+v", calls, s)
	if calls == 0 || s.ReplicaReads+s.LaggingReads != calls || s.FallbackReads != 0 {
		t.Fatalf("reads %d, stats %+v", calls, s)
	}
}

// The relay conformance suite (sessions, groups, events, the admin lists)
// with the listings read through a split on the streaming replica.
func TestRelayConformanceOnReplica(t *testing.T) {
	primary := pool(t)
	var calls atomic.Int64
	read, db := splitReads(t, primary, &calls)
	a2atest.Run(t, func(t *testing.T) a2a.Store {
		s, err := postgres.NewStore(postgres.Config{DB: primary, Read: read, TablePrefix: uniquePrefix(t, primary)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
	checkSplit(t, db, calls.Load())
}

// The task store conformance suite with ListTasks read through the split.
func TestTaskConformanceOnReplica(t *testing.T) {
	primary := pool(t)
	var calls atomic.Int64
	read, db := splitReads(t, primary, &calls)
	a2atest.TestTaskStore(t, func(t *testing.T) a2a.TaskStore {
		s, err := postgres.New(postgres.Config{DB: primary, Read: read, TablePrefix: uniquePrefix(t, primary)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
	checkSplit(t, db, calls.Load())
}
