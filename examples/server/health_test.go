package main

import (
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/talosgo/talos/gateway/serve"
	"github.com/talosgo/talos/internal/testenv"
)

func ready(t *testing.T, ts *testServer) (int, serve.ReadyBody) {
	t.Helper()
	var b serve.ReadyBody
	st := decode(t, ts.do(t, "GET", "/health/ready", "", nil), &b)
	return st, b
}

func TestHealthEmbedded(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	ts.dirProbe.every = time.Nanosecond // probe on every call here (see TestAttackNoDiskWritePerAnonymousCall)
	var live map[string]string
	if st := decode(t, ts.do(t, "GET", "/health/live", "", nil), &live); st != 200 || live["status"] != "ok" {
		t.Fatalf("live: %d %v", st, live)
	}
	st, b := ready(t, ts)
	if st != 200 || b.Status != "ok" || b.Checks["data_dir"].Status != "ok" || len(b.Checks) != 1 {
		t.Fatalf("ready: %d %+v", st, b)
	}
	// The data directory goes away: not ready, and the check is named.
	if err := os.RemoveAll(ts.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	st, b = ready(t, ts)
	if st != 503 || b.Status != "failed" || !slices.Equal(b.Failed, []string{"data_dir"}) || b.Checks["data_dir"].Error != "unavailable" {
		t.Fatalf("ready without a data dir: %d %+v", st, b)
	}
	// Liveness is unaffected.
	if st := decode(t, ts.do(t, "GET", "/health/live", "", nil), nil); st != 200 {
		t.Fatalf("live: %d", st)
	}
}

func TestHealthRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	cfg := testConfig(t)
	cfg.RedisURL = "redis://" + mr.Addr() + "/0"
	ts := newTestServer(t, cfg)
	if st, b := ready(t, ts); st != 200 || b.Checks["redis"].Status != "ok" {
		t.Fatalf("ready: %d %+v", st, b)
	}
	mr.Close()
	st, b := ready(t, ts)
	if st != 503 || !slices.Equal(b.Failed, []string{"redis"}) || b.Checks["data_dir"].Status != "ok" {
		t.Fatalf("ready with Redis down: %d %+v", st, b)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	if st, b := ready(t, ts); st != 200 {
		t.Fatalf("ready after Redis came back: %d %+v", st, b)
	}
}

func TestHealthPostgresReplicaDegraded(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dead := *u
	dead.Host = "127.0.0.1:1" // nothing listens there
	cfg := testConfig(t)
	cfg.PostgresURL = dsn
	cfg.PostgresReplicaURL = dead.String()
	cfg.tablePrefix = testenv.Unique(t) + "_"
	ts := newTestServer(t, cfg)
	t.Cleanup(func() {
		ts.db.Exec(t.Context(), `DROP TABLE IF EXISTS `+cfg.tablePrefix+`secrets, `+cfg.tablePrefix+`config_versions`)
	})
	st, b := ready(t, ts)
	if st != 200 || b.Status != "degraded" || !slices.Equal(b.Failed, []string{"postgres_replica"}) || b.Checks["postgres_primary"].Status != "ok" {
		t.Fatalf("ready with the replica down: %d %+v", st, b)
	}
	// Reads still work: the config service falls back to the primary.
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA)), nil); st != 201 {
		t.Fatalf("PUT: %d", st)
	}
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a", ts.cred, nil), nil); st != 200 {
		t.Fatalf("GET with the replica down: %d", st)
	}
}

func TestStartFailsWithoutPostgresPrimary(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = "postgres://talos:pw-do-not-print@127.0.0.1:1/db?connect_timeout=1"
	cfg.stdout = &syncBuffer{}
	_, err := New(t.Context(), cfg, nil)
	if err == nil {
		t.Fatal("New succeeded without a PostgreSQL primary")
	}
	if s := err.Error(); contains(s, "pw-do-not-print") {
		t.Fatalf("error leaks the DSN password: %s", s)
	}
}
