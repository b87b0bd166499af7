package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/config/configtest"
	"github.com/talosgo/talos/gateway/config/postgres"
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

func newStores(t *testing.T, u string, read func(*pgxpool.Pool) func(context.Context, func(context.Context, postgres.Querier) error) error) configtest.NewStores {
	return func(t *testing.T, n int) []config.Store {
		b := make([]byte, 6)
		rand.Read(b)
		prefix := "t" + hex.EncodeToString(b) + "_"
		var out []config.Store
		for range n {
			pool, err := pgxpool.New(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			cfg := postgres.Config{DB: pool, TablePrefix: prefix}
			if read != nil {
				cfg.Read = read(pool)
			}
			s, err := postgres.New(cfg)
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
				pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+prefix+`config_versions`)
				pool.Close()
			}
		})
		return out
	}
}

// TestConformance runs the suite with one pool per handle (replicas of a
// gateway: separate connections, one table), reads on the primary.
func TestConformance(t *testing.T) {
	u := dsn(t)
	configtest.Run(t, newStores(t, u, nil))
}

// TestConformanceThroughRead runs it again with reads through Config.Read on
// a second pool of the same database (a replica without lag), counting that
// reads went there.
func TestConformanceThroughRead(t *testing.T) {
	u := dsn(t)
	var reads atomic.Int64
	replica, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Close)
	configtest.Run(t, newStores(t, u, func(*pgxpool.Pool) func(context.Context, func(context.Context, postgres.Querier) error) error {
		return func(ctx context.Context, fn func(context.Context, postgres.Querier) error) error {
			reads.Add(1)
			return fn(ctx, replica)
		}
	}))
	if reads.Load() == 0 {
		t.Fatal("no read went through Config.Read")
	}
}

func TestNewRequiresDB(t *testing.T) {
	if _, err := postgres.New(postgres.Config{}); err == nil {
		t.Fatal("New without a pool succeeded")
	}
}

// TestHookOnTheSamePool: concurrent writers whose commit hook uses the
// store's own pool (an audit log in the same database) do not exhaust a
// small pool: every Put completes with dense versions.
func TestHookOnTheSamePool(t *testing.T) {
	u := dsn(t)
	pc, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+prefix+`config_versions`) })
	s, err := postgres.New(postgres.Config{DB: pool, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a deadlock fails instead of hanging
	defer cancel()
	hook := func(ctx context.Context, v config.Version, prev string) error {
		var one int
		return pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			doc := []byte(fmt.Sprintf(`{"n":%d}`, i))
			if _, _, err := s.Put(ctx, "budget", "b", fmt.Sprintf("digest-%d", i), doc, time.Now(), hook); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs, err := s.Versions(ctx, "budget", "b", 0, 100)
	if err != nil || len(vs) != n || vs[n-1].Version != n {
		t.Fatalf("versions %+v %v", vs, err)
	}
}
