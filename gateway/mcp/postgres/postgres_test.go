package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/mcp/idemtest"
	"github.com/talosgo/talos/gateway/mcp/postgres"
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

func TestConformance(t *testing.T) {
	db := pool(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() { db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+"mcp_idempotency") })
	s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	idemtest.Run(t, s)
	if n, err := s.Purge(t.Context()); err != nil || n != 0 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := postgres.New(postgres.Config{}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatal(err)
	}
	if _, err := postgres.New(postgres.Config{DB: &pgxpool.Pool{}, TablePrefix: "bad;"}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatal(err)
	}
}
