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
	procs map[string]*node
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
	pc := &PrivateCluster{dir: t.TempDir(), procs: map[string]*node{}}
	t.Cleanup(pc.stopAll)
	var all []string
	for i := range masters * (1 + replicas) {
		addr := pc.startFree(t)
		all = append(all, addr)
		if i < masters {
			pc.Masters = append(pc.Masters, addr)
		} else {
			pc.Replicas = append(pc.Replicas, addr)
		}
	}
	args := append([]string{"--cluster", "create"}, all...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	pc.WaitOK(t)
	return pc
}

// A node is one redis-server child process.
type node struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
}

// startFree starts a node on a free loopback port p (with its cluster bus
// port p+10000 free too) and returns its address. Ports are drawn from
// [20000, 22768), so p and p+10000 stay below Linux's default ephemeral
// range (32768-60999): no outgoing connection takes them between the
// check and the bind. A port another process binds first (another test's
// private cluster) is detected and another one drawn.
func (pc *PrivateCluster) startFree(t testing.TB) string {
	t.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	var last error
	for range 50 {
		p := 20000 + mrand.IntN(2768)
		if !free(p) || !free(p+10000) {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		if last = pc.start(addr); last == nil {
			return addr
		}
	}
	t.Fatalf("testenv: no free loopback port for a private Redis Cluster node: %v", last)
	return ""
}

// start runs redis-server on addr and waits until it answers as the node
// this cluster started (its working directory is ours).
func (pc *PrivateCluster) start(addr string) error {
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(pc.dir, port)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port,
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on %s: %w", addr, err)
	}
	n := &node{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.exited) }()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("redis-server on %s exited (port taken?)", addr)
		default:
		}
		got, err := c.ConfigGet(context.Background(), "dir").Result()
		if err == nil {
			if got["dir"] != dir {
				_ = cmd.Process.Kill()
				<-n.exited
				return fmt.Errorf("another server answers on %s", addr)
			}
			pc.mu.Lock()
			pc.procs[addr] = n
			pc.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-n.exited
			return fmt.Errorf("redis-server on %s does not answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the node at addr with SIGKILL (no shutdown, no failover
// handshake: a crash).
func (pc *PrivateCluster) Kill(t testing.TB, addr string) {
	t.Helper()
	pc.mu.Lock()
	n := pc.procs[addr]
	delete(pc.procs, addr)
	pc.mu.Unlock()
	if n == nil {
		t.Fatalf("testenv: no running node %s in this private cluster", addr)
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// Restart starts the node at addr again after Kill, with its cluster
// configuration file, so it rejoins the cluster (as a replica if it was
// failed over).
func (pc *PrivateCluster) Restart(t testing.TB, addr string) {
	t.Helper()
	if err := pc.start(addr); err != nil {
		t.Fatalf("testenv: restart: %v", err)
	}
}

func (pc *PrivateCluster) stopAll() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for addr, n := range pc.procs {
		_ = n.cmd.Process.Kill()
		<-n.exited
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
