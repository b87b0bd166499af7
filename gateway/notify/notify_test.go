package notify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/notify"
	"github.com/talosgo/talos/internal/testenv"
)

func service(t *testing.T, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is not set and TALOS_REQUIRE_SERVICES=1", env)
		}
		t.Skipf("%s not set", env)
	}
	return v
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// counting wraps a transport and counts its subscriptions.
type counting struct {
	notify.Transport
	ready atomic.Int64
}

func (c *counting) Listen(ctx context.Context, ready func(), deliver func(notify.Message)) error {
	return c.Transport.Listen(ctx, func() { c.ready.Add(1); ready() }, deliver)
}

// fixture is one transport under test: new makes a transport on a
// connection of its own, kill kills the subscription connections new's
// transports made, silent bumps a version without a message.
type fixture struct {
	new    func(t *testing.T) notify.Transport
	kill   func(t *testing.T)
	silent func(t *testing.T, kind string)
}

// applied records what a bus applied.
type applied struct {
	mu    sync.Mutex
	kinds map[string]int
	ch    chan string
}

func newApplied() *applied { return &applied{kinds: map[string]int{}, ch: make(chan string, 100)} }

func (a *applied) apply(_ context.Context, kind string) error {
	a.mu.Lock()
	a.kinds[kind]++
	a.mu.Unlock()
	a.ch <- kind
	return nil
}

// wait waits for kind to be applied and returns the time since start.
func (a *applied) wait(t *testing.T, kind string, start time.Time) time.Duration {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case k := <-a.ch:
			if k == kind {
				return time.Since(start)
			}
		case <-deadline:
			t.Fatalf("kind %q never applied", kind)
		}
	}
}

func runBus(t *testing.T, tr notify.Transport, poll time.Duration, a *applied) *notify.Bus {
	t.Helper()
	b, err := notify.New(notify.Config{Transport: tr, Apply: a.apply, Poll: poll})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testTransport(t *testing.T, f fixture) {
	t.Run("Delivery", func(t *testing.T) {
		pub := f.new(t)
		sub := &counting{Transport: f.new(t)}
		a := newApplied()
		// A poll of an hour: only the message can deliver.
		b := runBus(t, sub, time.Hour, a)
		waitFor(t, "subscription", func() bool { return sub.ready.Load() == 1 })
		start := time.Now()
		v, err := pub.Publish(t.Context(), "principal")
		if err != nil {
			t.Fatal(err)
		}
		d := a.wait(t, "principal", start)
		waitFor(t, "applied version", func() bool { return b.Applied("principal") >= v })
		t.Logf("published version %d, applied by the other subscriber after %v", v, d)
		// The versions read agrees.
		vs, err := pub.Versions(t.Context())
		if err != nil || vs["principal"] != v {
			t.Fatalf("versions %v, %v; want principal=%d", vs, err, v)
		}
	})
	t.Run("Reconnect", func(t *testing.T) {
		pub := f.new(t)
		sub := &counting{Transport: f.new(t)}
		a := newApplied()
		b := runBus(t, sub, time.Hour, a)
		waitFor(t, "subscription", func() bool { return sub.ready.Load() == 1 })
		f.kill(t)
		waitFor(t, "resubscription", func() bool { return sub.ready.Load() >= 2 })
		v, err := pub.Publish(t.Context(), "binding")
		if err != nil {
			t.Fatal(err)
		}
		a.wait(t, "binding", time.Now())
		waitFor(t, "applied version", func() bool { return b.Applied("binding") >= v })
	})
	t.Run("MissedMessageCaughtByVersion", func(t *testing.T) {
		sub := f.new(t)
		a := newApplied()
		b := runBus(t, sub, 100*time.Millisecond, a)
		waitFor(t, "first read", func() bool { _, at := b.Status(); return !at.IsZero() })
		start := time.Now()
		f.silent(t, "role")
		d := a.wait(t, "role", start)
		t.Logf("a version bumped without a message applied after %v (poll 100ms)", d)
	})
	t.Run("StartAppliesStored", func(t *testing.T) {
		pub := f.new(t)
		v, err := pub.Publish(t.Context(), "budget")
		if err != nil {
			t.Fatal(err)
		}
		a := newApplied()
		b := runBus(t, f.new(t), time.Hour, a)
		a.wait(t, "budget", time.Now())
		waitFor(t, "applied version", func() bool { return b.Applied("budget") >= v })
	})
}

func TestRedis(t *testing.T) {
	url := service(t, "TALOS_TEST_REDIS_URL")
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "talos-test-notify-" + unique() + ":"
	name := "notify-test-" + unique()
	t.Cleanup(func() {
		c := goredis.NewClient(opt)
		defer c.Close()
		c.Del(context.Background(), prefix+"versions")
	})
	testTransport(t, fixture{
		new: func(t *testing.T) notify.Transport {
			o := *opt
			o.ClientName = name
			c := goredis.NewClient(&o)
			// Every key the publish script touches is declared (the
			// Cluster's rule, which one node does not enforce).
			testenv.CheckDeclaredKeys(c)
			t.Cleanup(func() { c.Close() })
			return notify.NewRedis(c, prefix)
		},
		kill: func(t *testing.T) {
			c := goredis.NewClient(opt)
			defer c.Close()
			killPubSub(t, c, name)
		},
		silent: func(t *testing.T, kind string) {
			c := goredis.NewClient(opt)
			defer c.Close()
			if err := c.HIncrBy(t.Context(), prefix+"versions", kind, 1).Err(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// killPubSub kills the pub/sub connections named name on node c.
func killPubSub(t *testing.T, c *goredis.Client, name string) int {
	t.Helper()
	list, err := c.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		var named, pubsub bool
		for _, f := range strings.Fields(line) {
			switch {
			case strings.HasPrefix(f, "id="):
				id = f[3:]
			case f == "name="+name:
				named = true
			case strings.HasPrefix(f, "sub=") && f != "sub=0":
				pubsub = true
			}
		}
		if named && pubsub {
			if err := c.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

func TestRedisCluster(t *testing.T) {
	addrs := strings.Split(service(t, "TALOS_TEST_REDIS_CLUSTER_ADDRS"), ",")
	prefix := "talos-test-notify-" + unique() + ":"
	name := "notify-test-" + unique()
	t.Cleanup(func() {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
		defer c.Close()
		c.Del(context.Background(), prefix+"versions")
	})
	testTransport(t, fixture{
		new: func(t *testing.T) notify.Transport {
			c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, ClientName: name})
			t.Cleanup(func() { c.Close() })
			return notify.NewRedis(c, prefix)
		},
		kill: func(t *testing.T) {
			c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
			defer c.Close()
			var mu sync.Mutex
			n := 0
			err := c.ForEachShard(t.Context(), func(ctx context.Context, node *goredis.Client) error {
				k := killPubSub(t, node, name)
				mu.Lock()
				n += k
				mu.Unlock()
				return nil
			})
			if err != nil || n == 0 {
				t.Fatalf("killed %d subscriptions: %v", n, err)
			}
		},
		silent: func(t *testing.T, kind string) {
			c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
			defer c.Close()
			if err := c.HIncrBy(t.Context(), prefix+"versions", kind, 1).Err(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestPostgres(t *testing.T) {
	url := service(t, "TALOS_TEST_POSTGRES_URL")
	prefix := "talos_test_notify_" + unique() + "_"
	app := "notify-test-" + unique()
	pool := func(t *testing.T) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = app
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	admin := pool(t)
	first, err := notify.NewPostgres(admin, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := first.Migrate(t.Context()); err != nil { // idempotent
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), `DROP TABLE IF EXISTS `+prefix+`notify_versions`)
	})
	testTransport(t, fixture{
		new: func(t *testing.T) notify.Transport {
			tr, err := notify.NewPostgres(pool(t), prefix)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		},
		kill: func(t *testing.T) {
			var n int
			err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`, app).Scan(&n)
			if err != nil || n == 0 {
				t.Fatalf("terminated %d listeners: %v", n, err)
			}
		},
		silent: func(t *testing.T, kind string) {
			_, err := admin.Exec(t.Context(), `INSERT INTO `+prefix+`notify_versions (kind, version) VALUES ($1, 1)
				ON CONFLICT (kind) DO UPDATE SET version = `+prefix+`notify_versions.version + 1`, kind)
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestNewPostgresRefusesBadPrefix(t *testing.T) {
	for _, p := range []string{"Bad", "a-b", "x;drop", strings.Repeat("a", 41)} {
		if _, err := notify.NewPostgres(&pgxpool.Pool{}, p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func TestParseMessage(t *testing.T) {
	m, err := notify.ParseMessage("v1 principal 42")
	if err != nil || m != (notify.Message{Kind: "principal", Version: 42}) {
		t.Fatalf("%v, %v", m, err)
	}
	// A config document change: family, kind and a 64-byte name.
	long := "config.budget:" + strings.Repeat("n", 64)
	if m, err := notify.ParseMessage("v1 " + long + " 7"); err != nil || m.Kind != long {
		t.Fatalf("%v, %v", m, err)
	}
	if m.String() != "v1 principal 42" {
		t.Fatalf("String %q", m.String())
	}
	for _, bad := range []string{
		"", "v1", "v1 principal", "v2 principal 1", "v1 principal 0", "v1 principal -1", "v1 principal 01",
		"v1 Principal 1", "v1  principal 1", "v1 principal 1 ", "v1 principal 99999999999999999999",
		"v1 .x 1", "v1 " + strings.Repeat("a", notify.MaxKindLen+1) + " 1", "v1 a\n 1",
	} {
		_, err := notify.ParseMessage(bad)
		if contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("ParseMessage(%q) = %v, want TALOS_INVALID_INPUT", bad, err)
		}
	}
}

func TestPublishRefusesBadKind(t *testing.T) {
	b, err := notify.New(notify.Config{Transport: &counting{}, Apply: func(context.Context, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), "Not a kind"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Publish of a bad kind: %v", err)
	}
	if _, err := notify.New(notify.Config{}); err == nil {
		t.Fatal("New without Transport and Apply succeeded")
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"v1 principal 1", "v1 a.b:c-d_e 9223372036854775807", "v1 x 0", "", "v1 x 1 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := notify.ParseMessage(s)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v is not TALOS_INVALID_INPUT", err)
			}
			return
		}
		if m.Version <= 0 || !notify.ValidKind(m.Kind) || m.String() != s {
			t.Fatalf("accepted %q as %+v", s, m)
		}
	})
}
