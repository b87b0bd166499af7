package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/notify"
	"github.com/talosgo/talos/internal/testenv"
)

// TestRedisSettings: the Cluster and Sentinel settings, their checks, and
// the client each builds.
func TestRedisSettings(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cfg, _, err := LoadConfig(nil, env("TALOS_REDIS_CLUSTER_ADDRS", "127.0.0.1:7001, 127.0.0.1:7002"))
	if err != nil || len(cfg.RedisClusterAddrs) != 2 || cfg.RedisClusterAddrs[1] != "127.0.0.1:7002" || !cfg.redisConfigured() {
		t.Fatalf("cluster: %+v %v", cfg.RedisClusterAddrs, err)
	}
	c, err := newRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster client is %T", c)
	}
	c.Close()
	cfg, _, err = LoadConfig([]string{"-redis-sentinel", "127.0.0.1:26379", "-redis-sentinel-master", "mymaster"},
		env("TALOS_REDIS_URL", "redis://:pw@127.0.0.1:6379/3"))
	if err != nil || cfg.RedisSentinelName != "mymaster" {
		t.Fatalf("sentinel: %+v %v", cfg, err)
	}
	if c, err = newRedisClient(cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*redis.Client); !ok {
		t.Fatalf("sentinel client is %T", c)
	}
	c.Close()
	for _, bad := range []func(string) string{
		env("TALOS_REDIS_CLUSTER_ADDRS", "127.0.0.1"),
		env("TALOS_REDIS_CLUSTER_ADDRS", "127.0.0.1:0"),
		env("TALOS_REDIS_CLUSTER_ADDRS", ":7001"),
		env("TALOS_REDIS_SENTINEL_ADDRS", "127.0.0.1:26379"),
		env("TALOS_REDIS_SENTINEL_MASTER", "m"),
		env("TALOS_REDIS_CLUSTER_ADDRS", "127.0.0.1:7001", "TALOS_REDIS_SENTINEL_ADDRS", "127.0.0.1:26379", "TALOS_REDIS_SENTINEL_MASTER", "m"),
		env("TALOS_REDIS_CLUSTER_ADDRS", "127.0.0.1:7001", "TALOS_REDIS_URL", "redis://127.0.0.1:6379/2"),
	} {
		if _, _, err := LoadConfig(nil, bad); err == nil {
			t.Errorf("accepted %q %q", bad("TALOS_REDIS_CLUSTER_ADDRS"), bad("TALOS_REDIS_SENTINEL_ADDRS"))
		}
	}
	// The URL's password is not echoed.
	cfg = testConfig(t)
	cfg.RedisURL = "redis://:s3cret@127.0.0.1:6379/x"
	if _, err := newRedisClient(cfg); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
}

// TestConfigBudgetEnforced: a budget config document (PUT
// /v1/config/budget/{name}) is a hard budget the surfaces enforce, on one
// process without shared stores too.
func TestConfigBudgetEnforced(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-c")
	tok := issue(t, ts, alice.did, false, grant(a2a.Tool, "a2a.send", "a2a.get", "a2a.invoke")).Token
	putConfigBudget(t, ts, "team-c-cap", "team-c", "0.0015")
	send := map[string]any{"message": map[string]any{"messageId": "m1", "role": "user", "parts": []any{map[string]any{"text": "hi"}}}}
	alice.rpc("/rpc", tok, "SendMessage", send).task(t, "first task in the document's budget")
	if r := alice.rpc("/rpc", tok, "SendMessage", send); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("task over the document's budget: %+v", r.Error)
	}
	// A new version raises the cap.
	putConfigBudget(t, ts, "team-c-cap", "team-c", "1")
	alice.rpc("/rpc", tok, "SendMessage", send).task(t, "task after the cap was raised")

	// Below one task's cost; after a restart (spend is per process here)
	// the stored document is enforced before the first request.
	putConfigBudget(t, ts, "team-c-cap", "team-c", "0.0005")
	cfg := ts.cfg
	if err := ts.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts2 := newTestServer(t, cfg)
	if sc, ok := ts2.core.admin.Budgets().Get("team:team-c"); !ok || sc.Limit != 500 {
		t.Fatalf("after a restart: %+v %v", sc, ok)
	}
	if r := alice.on(ts2).rpc("/rpc", tok, "SendMessage", send); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("task over the stored document's budget after a restart: %+v", r.Error)
	}
}

// TestConfigBudgetScope: the document's scope, period and cap (rounded
// down to whole micro-USD); no max_usd, no cap.
func TestConfigBudgetScope(t *testing.T) {
	sc, ok, err := configBudgetScope([]byte(`{"id":"k","scope_type":"key","scope_id":"did:key:z6Mkx","period":"monthly","max_usd":0.0000019}`))
	if err != nil || !ok || sc.ID != "key:did:key:z6Mkx" || sc.Limit != 1 {
		t.Fatalf("%+v %v %v", sc, ok, err)
	}
	sc, ok, err = configBudgetScope([]byte(`{"id":"t","scope_type":"team","scope_id":"a","max_usd":0.0015}`))
	if err != nil || !ok || sc.ID != "team:a" || sc.Limit != 1500 {
		t.Fatalf("%+v %v %v", sc, ok, err)
	}
	if _, ok, err := configBudgetScope([]byte(`{"id":"t","scope_type":"team","scope_id":"a"}`)); ok || err != nil {
		t.Fatalf("no max_usd: %v %v", ok, err)
	}
	if _, _, err := configBudgetScope([]byte(`{"id":"t","scope_type":"team","scope_id":"a","max_usd":1e300}`)); err == nil {
		t.Fatal("max_usd 1e300 accepted")
	}
	// The change of a config document with the longest names is a valid
	// notify kind.
	if k := configChangePrefix + strings.Repeat("k", config.MaxNameLen) + ":" + strings.Repeat("n", config.MaxNameLen); !notify.ValidKind(k) {
		t.Fatalf("%q is not a valid kind", k)
	}
}

func putConfigBudget(t *testing.T, ts *testServer, name, team, maxUSD string) {
	t.Helper()
	doc := fmt.Sprintf(`{"id":%q,"scope_type":"team","scope_id":%q,"period":"daily","max_usd":%s}`, name, team, maxUSD)
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/"+name, ts.cred, []byte(doc)), nil); st != http.StatusOK && st != http.StatusCreated {
		t.Fatalf("PUT config budget: %d", st)
	}
}

// waitUntil polls cond every 5 ms and returns how long after start it
// held; it fails the test 10 s after start.
func waitUntil(t *testing.T, what string, start time.Time, cond func() bool) time.Duration {
	t.Helper()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// dropReplicaTablesAtEnd drops the tables replicas.go adds.
func dropReplicaTablesAtEnd(t *testing.T, url, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping the test tables: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, tb := range []string{"notify_versions", "jobs", "audit_checkpoints"} {
			conn.Exec(ctx, `DROP TABLE IF EXISTS `+prefix+tb)
		}
	})
}

// TestReplicasPropagateInProcess: two servers on one PostgreSQL and Redis
// (in this process): a principal deletion, an admin budget
// and a config budget edited on a reach b (each delay logged), and the
// shared budget is enforced across them on Redis.
func TestReplicasPropagateInProcess(t *testing.T) {
	for _, store := range []string{"redis", "postgres"} {
		t.Run(store, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.PostgresURL = testenv.PostgresURL(t)
			if store == "redis" {
				if testenv.RedisURL() == "" {
					testenv.Redis(t) // skips, or fails under TALOS_REQUIRE_SERVICES
				}
				cfg.RedisURL = testenv.RedisURL()
			}
			cfg.tablePrefix = testenv.Unique(t) + "_"
			cfg.MasterKey = make([]byte, 32)
			cfg.CheckpointInterval = 50 * time.Millisecond
			dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
			dropReplicaTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
			a := newTestServer(t, cfg)
			cfg2 := cfg
			cfg2.DataDir = t.TempDir() + "/replica"
			b := newTestServer(t, cfg2)
			b.cred = a.cred
			a.life.Start() // the workers (propagation) without serving
			b.life.Start()

			// A principal registered on a and cached by b, deleted on a:
			// b forgets it (the cache alone would keep it for
			// admin.PrincipalCacheTTL).
			alice := newAgent(t, a, "alice", "team-p")
			tok := issue(t, a, alice.did, false, grant(a2a.Tool, "a2a.send", "a2a.get", "a2a.invoke")).Token
			bob := newAgent(t, a, "bob", "team-p")
			if p, err := b.core.principals.Lookup(t.Context(), bob.did); err != nil || p == nil {
				t.Fatalf("bob on b: %v %v", p, err)
			}
			start := time.Now()
			if st := decode(t, a.do(t, "DELETE", "/v1/principals/"+bob.did, a.cred, nil), nil); st != http.StatusOK {
				t.Fatalf("delete bob: %d", st)
			}
			d := waitUntil(t, "deletion on b", start, func() bool {
				p, err := b.core.principals.Lookup(t.Context(), bob.did)
				return err == nil && p == nil
			})
			t.Logf("%s: principal deletion applied on b after %v", store, d)

			// An admin budget.
			start = time.Now()
			putBudget(t, a, "team:team-p", "5", "hard")
			d = waitUntil(t, "budget on b", start, func() bool {
				sc, ok := b.core.admin.Budgets().Get("team:team-p")
				return ok && sc.Limit == 5_000_000
			})
			t.Logf("%s: admin budget enforced on b after %v", store, d)

			// A config budget document: enforcement on b.
			start = time.Now()
			putConfigBudget(t, a, "team-p-cap", "team-p", "0.0015")
			d = waitUntil(t, "config budget on b", start, func() bool {
				sc, ok := b.core.admin.Budgets().Get("team:team-p")
				return ok && sc.Limit == 1500
			})
			t.Logf("%s: config budget document enforced on b after %v", store, d)
			// The checkpoint publication is a cluster-wide job.
			waitUntil(t, "checkpoint job record", time.Now(), func() bool {
				var n int
				a.db.Primary().QueryRow(t.Context(), `SELECT count(*) FROM `+cfg.tablePrefix+`jobs WHERE name = 'audit-checkpoint'`).Scan(&n)
				return n == 1
			})
			if store != "redis" {
				return // budget spend is per process without Redis
			}
			send := map[string]any{"message": map[string]any{"messageId": "m1", "role": "user", "parts": []any{map[string]any{"text": "hi"}}}}
			alice.on(b).rpc("/rpc", tok, "SendMessage", send).task(t, "first task on b")
			if r := alice.on(a).rpc("/rpc", tok, "SendMessage", send); r.Error == nil || r.Error.Data.TalosCode != string(contracts.CodeBudgetExceeded) {
				t.Fatalf("task over the shared budget on a: %+v", r.Error)
			}
		})
	}
}

// TestPropagationReadiness: the propagation check fails while the bus has
// neither a subscription nor a recent version read (here: a Redis that
// does not answer), and names no address or credential.
func TestPropagationReadiness(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: freePort(t), Password: "s3cret", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	p := &propagation{}
	bus, err := notify.New(notify.Config{Transport: notify.NewRedis(c, "talos-test-ready:"), Apply: func(context.Context, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	p.bus = bus
	if err := p.check(t.Context()); err != nil {
		t.Fatalf("check before the workers run: %v", err)
	}
	p.started.Store(time.Now().Add(-time.Minute).UnixNano()) // running for a minute
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { bus.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	err = p.check(t.Context())
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("check with an unreachable Redis: %v", err)
	}
}
