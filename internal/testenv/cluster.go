package testenv

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClusterAddrs returns the seed addresses in
// $TALOS_TEST_REDIS_CLUSTER_ADDRS (comma-separated), or nil when unset.
func RedisClusterAddrs() []string {
	v := strings.TrimSpace(os.Getenv("TALOS_TEST_REDIS_CLUSTER_ADDRS"))
	if v == "" {
		return nil
	}
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// RedisCluster returns a go-redis ClusterClient for the Redis Cluster at
// $TALOS_TEST_REDIS_CLUSTER_ADDRS (.ci/redis-cluster.sh starts one on
// 127.0.0.1:7001-7006). When the variable is unset it skips the test, or
// fails it with TALOS_REQUIRE_SERVICES=1; a cluster that does not answer or
// whose state is not ok fails the test. The client is closed when the test
// ends. There is no in-process stand-in: miniredis has no cluster mode.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := RedisClusterAddrs()
	if len(addrs) == 0 {
		msg := "TALOS_TEST_REDIS_CLUSTER_ADDRS is unset: skipping Redis Cluster test (.ci/redis-cluster.sh starts one)"
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	info, err := c.ClusterInfo(t.Context()).Result()
	if err != nil {
		t.Fatalf("testenv: redis cluster at %v does not answer: %v", addrs, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("testenv: redis cluster at %v is not ok:\n%s", addrs, info)
	}
	if err := c.ForEachShard(t.Context(), func(ctx context.Context, n *redis.Client) error {
		return n.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("testenv: redis cluster at %v: %v", addrs, err)
	}
	return c
}

// A PrivateCluster is a Redis Cluster that one test started for itself on
// free loopback ports, with redis-server processes that are its children:
// the test may kill and restart its nodes without disturbing any other
// test. Every node is killed when the test ends.
type PrivateCluster struct {
	// Masters and Replicas are the nodes' addresses as created (roles
	// change after a failover).
	Masters, Replicas []string

	dir   string
	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

// StartRedisCluster starts a private cluster of masters masters with
// replicas replicas each (cluster-node-timeout 1000 ms, no persistence) and
// waits until its state is ok. It needs redis-server and redis-cli on PATH:
// without them it skips the test, or fails it with TALOS_REQUIRE_SERVICES=1.
func StartRedisCluster(t testing.TB, masters, replicas int) *PrivateCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := "testenv: " + bin + " not found: skipping private Redis Cluster test"
			if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	pc := &PrivateCluster{dir: t.TempDir(), procs: map[string]*exec.Cmd{}}
	t.Cleanup(pc.stopAll)
	ports := freeClusterPorts(t, masters*(1+replicas))
	var all []string
	for i, p := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(p)
		all = append(all, addr)
		if i < masters {
			pc.Masters = append(pc.Masters, addr)
		} else {
			pc.Replicas = append(pc.Replicas, addr)
		}
		pc.start(t, addr)
	}
	args := append([]string{"--cluster", "create"}, all...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	pc.WaitOK(t)
	return pc
}

// freeClusterPorts picks n loopback ports p, each with p and its cluster
// bus port p+10000 free.
func freeClusterPorts(t testing.TB, n int) []int {
	t.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	var out []int
	seen := map[int]bool{}
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			t.Fatal("testenv: no free loopback ports for a private Redis Cluster")
		}
		p := 20000 + mrand.IntN(25000)
		if seen[p] || seen[p+10000] || seen[p-10000] || !free(p) || !free(p+10000) {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

func (pc *PrivateCluster) start(t testing.TB, addr string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(pc.dir, port)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port,
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start redis-server on %s: %v", addr, err)
	}
	pc.mu.Lock()
	pc.procs[addr] = cmd
	pc.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: redis-server on %s does not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the node at addr with SIGKILL (no shutdown, no failover
// handshake: a crash).
func (pc *PrivateCluster) Kill(t testing.TB, addr string) {
	t.Helper()
	pc.mu.Lock()
	cmd := pc.procs[addr]
	delete(pc.procs, addr)
	pc.mu.Unlock()
	if cmd == nil {
		t.Fatalf("testenv: no running node %s in this private cluster", addr)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the node at addr again after Kill, with its cluster
// configuration file, so it rejoins the cluster (as a replica if it was
// failed over).
func (pc *PrivateCluster) Restart(t testing.TB, addr string) {
	t.Helper()
	pc.start(t, addr)
}

func (pc *PrivateCluster) stopAll() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for addr, cmd := range pc.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(pc.procs, addr)
	}
}

// Client returns a ClusterClient seeded with every node, closed when the
// test ends.
func (pc *PrivateCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: append(append([]string{}, pc.Masters...), pc.Replicas...)})
	t.Cleanup(func() { c.Close() })
	return c
}

// MasterFor returns the address of the running node that is currently
// master of key's slot, as the first running node that answers reports.
func (pc *PrivateCluster) MasterFor(t testing.TB, key string) string {
	t.Helper()
	for _, a := range pc.running() {
		c := redis.NewClient(&redis.Options{Addr: a})
		slot, err := c.ClusterKeySlot(context.Background(), key).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = c.ClusterShards(context.Background()).Result()
		}
		c.Close()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start <= slot && slot <= r.End {
					if m := shardMaster(sh); m != "" {
						return m
					}
				}
			}
		}
	}
	t.Fatalf("testenv: no master found for key %q", key)
	return ""
}

// Failover makes a live replica of key's slot master take over with
// CLUSTER FAILOVER (a manual, graceful failover: the master stays up and
// becomes a replica) and waits until the cluster is ok with the new
// master. It returns the old and the new master's addresses.
func (pc *PrivateCluster) Failover(t testing.TB, key string) (old, new string) {
	t.Helper()
	old = pc.MasterFor(t, key)
	c := redis.NewClient(&redis.Options{Addr: old})
	shards, err := c.ClusterShards(context.Background()).Result()
	c.Close()
	if err != nil {
		t.Fatalf("testenv: CLUSTER SHARDS on %s: %v", old, err)
	}
	var replica string
	for _, sh := range shards {
		if shardMaster(sh) != old {
			continue
		}
		for _, n := range sh.Nodes {
			// Redis 7.0 reports a replica at replication offset 0 (no
			// write yet) as "loading"; only "fail" means it is gone.
			if n.Role == "replica" && n.Health != "fail" {
				replica = net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			}
		}
	}
	if replica == "" {
		t.Fatalf("testenv: master %s has no live replica", old)
	}
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	if err := rc.ClusterFailover(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: CLUSTER FAILOVER on %s: %v", replica, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pc.MasterFor(t, key) != replica {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s did not take over from %s in 30 s", replica, old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pc.WaitOK(t)
	return old, replica
}

// shardMaster returns the address of a shard's healthy master, or "".
func shardMaster(sh redis.ClusterShard) string {
	for _, n := range sh.Nodes {
		if n.Role == "master" && n.Health == "online" {
			return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
		}
	}
	return ""
}

func (pc *PrivateCluster) running() []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var addrs []string
	for a := range pc.procs {
		addrs = append(addrs, a)
	}
	return addrs
}

// WaitOK waits (up to 30 s) until every running node reports
// cluster_state:ok, they agree on which master serves which slots, and every replica is in sync with its master (so it can take over).
func (pc *PrivateCluster) WaitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pc.ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: private redis cluster not ok after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (pc *PrivateCluster) ok() error {
	var view string
	for _, a := range pc.running() {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.ClusterInfo(context.Background()).Result()
		var shards []redis.ClusterShard
		var repl string
		if err == nil {
			shards, err = c.ClusterShards(context.Background()).Result()
		}
		if err == nil {
			repl, err = c.Info(context.Background(), "replication").Result()
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", a)
		}
		// A replica that has not finished its first sync cannot take over.
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s: replica not in sync with its master", a)
		}
		var masters []string
		for _, sh := range shards {
			if len(sh.Slots) == 0 {
				continue
			}
			m := shardMaster(sh)
			if m == "" {
				return fmt.Errorf("%s: a shard has no online master", a)
			}
			masters = append(masters, fmt.Sprint(m, sh.Slots))
		}
		slices.Sort(masters)
		v := strings.Join(masters, " ")
		if view != "" && v != view {
			return fmt.Errorf("%s: nodes disagree about the slot map", a)
		}
		view = v
	}
	return nil
}
