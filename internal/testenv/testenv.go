// Package testenv finds the outside resources that tests use: the Talos
// contracts reference data, a Redis server, a Redis Cluster
// ($TALOS_TEST_REDIS_CLUSTER_ADDRS, or a private one a test starts with
// StartRedisCluster) and a PostgreSQL server.
//
// It is imported only by tests. Each finder skips the test with a message when
// its resource is absent, unless TALOS_REQUIRE_CONTRACTS=1 (contracts) or
// TALOS_REQUIRE_SERVICES=1 (Redis, Redis Cluster and PostgreSQL) is set, in
// which case the test fails instead: .ci/run sets both, so CI never skips
// silently.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ContractsDir returns the root of the talos-contracts reference data:
// $TALOS_CONTRACTS_DIR, or ../shared/reference/talos-contracts beside the
// repository. When absent it skips the test (fails with TALOS_REQUIRE_CONTRACTS=1).
func ContractsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TALOS_CONTRACTS_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared", "reference", "talos-contracts")
	}
	if _, err := os.Stat(filepath.Join(dir, "test_vectors")); err != nil {
		msg := "talos-contracts reference data not found at " + dir + " (set TALOS_CONTRACTS_DIR)"
		if os.Getenv("TALOS_REQUIRE_CONTRACTS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// ReadContract reads a file below the contracts root, e.g.
// "test_vectors/base64url.json".
func ReadContract(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ContractsDir(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Unique returns a short random prefix for keys, tables and schemas, so that
// tests sharing one server do not see each other's data.
func Unique(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name()))
	if len(name) > 24 {
		name = name[:24]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

// RedisURL returns $TALOS_TEST_REDIS_URL, or "" when unset.
func RedisURL() string { return os.Getenv("TALOS_TEST_REDIS_URL") }

// Redis returns a client for $TALOS_TEST_REDIS_URL, or for an in-process
// miniredis when it is unset (failing instead with TALOS_REQUIRE_SERVICES=1).
// The client is closed when the test ends. The second result is true for the
// real server.
func Redis(t testing.TB) (redis.UniversalClient, bool) {
	t.Helper()
	if u := RedisURL(); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("testenv: TALOS_TEST_REDIS_URL: %v", err)
		}
		c := redis.NewClient(opt)
		if err := c.Ping(t.Context()).Err(); err != nil {
			t.Fatalf("testenv: redis at %s does not answer: %v", u, err)
		}
		t.Cleanup(func() { c.Close() })
		return c, true
	}
	if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
		t.Fatal("testenv: TALOS_REQUIRE_SERVICES=1 but TALOS_TEST_REDIS_URL is unset")
	}
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, false
}

// PostgresURL returns $TALOS_TEST_POSTGRES_URL, skipping the test with a
// message when it is unset (failing with TALOS_REQUIRE_SERVICES=1).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TALOS_TEST_POSTGRES_URL")
	if u == "" {
		msg := "TALOS_TEST_POSTGRES_URL is unset: skipping PostgreSQL test"
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}

// PostgresReplicaURL returns $TALOS_TEST_POSTGRES_REPLICA_URL, a streaming
// hot standby of $TALOS_TEST_POSTGRES_URL (.ci/pg-replica.sh), skipping the
// test when it is unset (failing with TALOS_REQUIRE_SERVICES=1).
func PostgresReplicaURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TALOS_TEST_POSTGRES_REPLICA_URL")
	if u == "" {
		msg := "TALOS_TEST_POSTGRES_REPLICA_URL is unset: skipping the PostgreSQL standby test"
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}
