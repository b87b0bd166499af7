package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/postgres"
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

// Listings (All in a context that allows replica reads) are served by the
// streaming replica; the caller that wrote sees its write at once; Get and
// unmarked reads (decisions) stay on the primary.
func TestAllReadsReplica(t *testing.T) {
	primary := pool(t)
	db, err := pgsplit.New(pgsplit.Config{Primary: primary, Replica: replicaPool(t)})
	if err != nil {
		t.Fatal(err)
	}
	prefix := uniquePrefix(t, primary)
	s, err := postgres.New(postgres.Config{DB: primary, TablePrefix: prefix, Read: func(ctx context.Context, fn func(context.Context, postgres.Querier) error) error {
		return db.ReadIfAllowed(ctx, func(ctx context.Context, q pgsplit.Querier) error { return fn(ctx, q) })
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	has := func(docs []admin.Doc, id string) bool {
		for _, d := range docs {
			if d.Kind == admin.KindPrincipal && d.ID == id {
				return true
			}
		}
		return false
	}

	alice := pgsplit.WithCaller(ctx, "alice")
	if err := s.Put(alice, admin.Doc{Kind: admin.KindPrincipal, ID: "p1", Doc: []byte(`{"id":"p1"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Wrote(alice); err != nil {
		t.Fatal(err)
	}
	docs, err := s.All(pgsplit.WithReplicaReads(alice))
	if err != nil || !has(docs, "p1") {
		t.Fatalf("alice's listing right after her write: %v, %v", docs, err)
	}

	// Any listing reaches the replica once it has replayed the write.
	listing := pgsplit.WithReplicaReads(ctx)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		before := db.Stats().ReplicaReads
		docs, err := s.All(listing)
		if err != nil {
			t.Fatal(err)
		}
		if has(docs, "p1") && db.Stats().ReplicaReads == before+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica listing with the write after 20 s: %+v", db.Stats())
		}
	}

	before := db.Stats()
	if _, ok, err := s.Get(listing, admin.KindPrincipal, "p1"); err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if docs, err := s.All(ctx); err != nil || !has(docs, "p1") {
		t.Fatalf("All for a decision: %v, %v", docs, err)
	}
	after := db.Stats()
	if after.ReplicaReads != before.ReplicaReads || after.PrimaryReads != before.PrimaryReads+1 {
		t.Fatalf("Get or an unmarked All reached the replica: before %+v, after %+v", before, after)
	}
}
