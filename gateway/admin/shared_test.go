package admin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/postgres"
	"github.com/talosgo/talos/identity"
)

// sharedStore returns a PostgreSQL store on a fresh table and a function
// opening another store (another replica) on the same table.
func sharedStore(t *testing.T) (admin.Store, func() admin.Store) {
	t.Helper()
	u := os.Getenv("TALOS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal("TALOS_TEST_POSTGRES_URL is not set and TALOS_REQUIRE_SERVICES=1")
		}
		t.Skip("TALOS_TEST_POSTGRES_URL is not set")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	open := func() admin.Store {
		db, err := pgxpool.New(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	t.Cleanup(func() {
		db, err := pgxpool.New(context.Background(), u)
		if err == nil {
			db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"admin_docs")
			db.Close()
		}
	})
	return s, open
}

// TestSharedRegistry runs two gateways (replicas) on one PostgreSQL store:
// a key registered on one signs requests on the other at first use, and a
// deletion on one reaches the other once its cached view is older than
// PrincipalCacheTTL, not before.
func TestSharedRegistry(t *testing.T) {
	store, open := sharedStore(t)
	issuer, _ := identity.GenerateWallet("issuer")
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	a := newFixtureWith(t, issuer, store, nil)
	b := newFixtureWith(t, issuer, open(), clock)

	alice, _ := identity.GenerateWallet("alice")
	did := alice.DID().String()
	if st := a.do("PUT", "/v1/principals/"+did, true, `{"team_id":"team-a"}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st, p := b.whoami(alice); st != 200 || p.TeamID != "team-a" {
		t.Fatalf("registered on a, used on b: %d %+v", st, p)
	}
	if st := a.do("DELETE", "/v1/principals/"+did, true, "", nil); st != 200 {
		t.Fatal(st)
	}
	if st, _ := b.whoami(alice); st != 200 {
		t.Fatalf("within the TTL b still serves its cached registration: %d", st)
	}
	offset.Store(int64(admin.PrincipalCacheTTL + time.Second))
	if st, _ := b.whoami(alice); st != http.StatusUnauthorized {
		t.Fatalf("deleted on a, on b after the TTL: %d", st)
	}
	// Registered again on a: b finds it on its next look-up.
	if st := a.do("PUT", "/v1/principals/"+did, true, `{"team_id":"team-b"}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st, p := b.whoami(alice); st != 200 || p.TeamID != "team-b" {
		t.Fatalf("re-registered: %d %+v", st, p)
	}
}
