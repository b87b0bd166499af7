package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	budgetredis "github.com/talosgo/talos/budget/redis"
)

// startRedisProc starts redis-server with args on a free loopback port
// and returns the port; it is killed when the test ends.
func startRedisProc(t *testing.T, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	startRedisAt(t, port, args...)
	return port
}

// startRedisAt starts redis-server with args on port, waits until it
// answers and returns a function that kills it (also run when the test
// ends).
func startRedisAt(t *testing.T, port string, args ...string) (kill func()) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal("redis-server is not installed and TALOS_REQUIRE_SERVICES=1")
		}
		t.Skip("redis-server is not installed")
	}
	cmd := exec.Command("redis-server", append(args, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")...)
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(kill)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	waitUntil(t, "redis-server on "+port, time.Now(), func() bool { return c.Ping(context.Background()).Err() == nil })
	return kill
}

// TestRedisSentinel: a real Sentinel watching a real master; the server's
// Sentinel client (TALOS_REDIS_SENTINEL_ADDRS, TALOS_REDIS_SENTINEL_MASTER)
// finds the master and the budget store works through it.
func TestRedisSentinel(t *testing.T) {
	master := startRedisProc(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte("sentinel monitor talostest 127.0.0.1 "+master+" 1\nsentinel down-after-milliseconds talostest 2000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := startRedisProc(t, conf, "--sentinel")
	cfg, _, err := LoadConfig(nil, func(k string) string {
		return map[string]string{
			"TALOS_REDIS_SENTINEL_ADDRS": "127.0.0.1:" + sentinel, "TALOS_REDIS_SENTINEL_MASTER": "talostest",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := newRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	info, err := c.Info(ctx, "server").Result()
	if err != nil || !strings.Contains(info, "tcp_port:"+master) {
		t.Fatalf("the Sentinel client did not reach the master on %s: %v", master, err)
	}
	b, err := budgetredis.New(c, budgetredis.Config{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{ID: "team:sentinel", Limit: 10, Mode: budget.ModeHard, Period: budget.Daily()}
	ok := 0
	for range 3 {
		res, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{scope}, Group: "team:sentinel", Amount: 4})
		if err == nil && res.Allowed {
			ok++
		}
	}
	if ok != 2 {
		t.Fatalf("%d of 3 reservations of 4 under a hard cap of 10 through Sentinel", ok)
	}
}
