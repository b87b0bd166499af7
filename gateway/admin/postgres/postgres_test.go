package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/gateway/admin/postgres"
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

func newStore(t *testing.T, db *pgxpool.Pool, prefix string) *postgres.Store {
	t.Helper()
	s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func uniquePrefix(t *testing.T, db *pgxpool.Pool) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() { db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"admin_docs") })
	return prefix
}

// prefixes remembers each store's table prefix for Reopen.
var prefixes = map[admin.Store]string{}

func TestConformance(t *testing.T) {
	db := pool(t)
	admintest.Run(t, func(t *testing.T) admin.Store {
		p := uniquePrefix(t, db)
		s := newStore(t, db, p)
		prefixes[s] = p
		return s
	}, func(t *testing.T, s admin.Store) admin.Store {
		// A new pool: nothing is shared with the first store but the table.
		return newStore(t, pool(t), prefixes[s])
	})
}

func TestConfig(t *testing.T) {
	if _, err := postgres.New(postgres.Config{}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("no DB: %v", err)
	}
	db := pool(t)
	for _, bad := range []string{"Upper_", "a-b", "1abc", "x; DROP TABLE y;", "a_very_long_prefix_that_goes_on_and_on_forever_"} {
		if _, err := postgres.New(postgres.Config{DB: db, TablePrefix: bad}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("prefix %q: %v", bad, err)
		}
	}
	s, err := postgres.New(postgres.Config{DB: db})
	if err != nil || !s.Shared() {
		t.Fatalf("default prefix: %v", err)
	}
}

// TestUnavailable checks that a store whose database is gone fails every
// call with INTERNAL, never an empty answer.
func TestUnavailable(t *testing.T) {
	db := pool(t)
	p, err := pgxpool.New(t.Context(), db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, p, uniquePrefix(t, db))
	p.Close()
	ctx := t.Context()
	if err := s.Put(ctx, admin.Doc{Kind: admin.KindRole, ID: "r", Doc: []byte(`{}`)}); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Errorf("put: %v", err)
	}
	if _, _, err := s.Get(ctx, admin.KindRole, "r"); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Errorf("get: %v", err)
	}
	if _, err := s.Delete(ctx, admin.KindRole, "r"); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Errorf("delete: %v", err)
	}
	if _, err := s.All(ctx); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Errorf("all: %v", err)
	}
}
