package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/secrets"
	"github.com/talosgo/talos/gateway/secrets/postgres"
	"github.com/talosgo/talos/gateway/secrets/secretstest"
)

// dsn returns $TALOS_TEST_POSTGRES_URL; without it the test skips, or fails
// under TALOS_REQUIRE_SERVICES=1 (the root module's internal/testenv rule,
// copied: the gateway module does not import testenv's Redis helpers).
func dsn(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TALOS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal("TALOS_TEST_POSTGRES_URL is not set and TALOS_REQUIRE_SERVICES=1")
		}
		t.Skip("TALOS_TEST_POSTGRES_URL is not set")
	}
	return u
}

// TestConformance runs the suite with one pool per handle (two replicas of
// a gateway: separate connections, one table, one advisory lock).
func TestConformance(t *testing.T) {
	u := dsn(t)
	secretstest.Run(t, func(t *testing.T, n int) []secrets.Store {
		b := make([]byte, 6)
		rand.Read(b)
		prefix := "t" + hex.EncodeToString(b) + "_"
		var out []secrets.Store
		for range n {
			pool, err := pgxpool.New(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			s, err := postgres.New(postgres.Config{DB: pool, TablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		t.Cleanup(func() {
			pool, err := pgxpool.New(context.Background(), u)
			if err == nil {
				pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+prefix+`secrets`)
				pool.Close()
			}
		})
		return out
	})
}

func TestNewRequiresDB(t *testing.T) {
	if _, err := postgres.New(postgres.Config{}); err == nil {
		t.Fatal("New without a pool succeeded")
	}
}
