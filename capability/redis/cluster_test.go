package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/capability/capabilitytest"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// tagged returns a test-unique prefix with a hash tag, as a cluster needs.
func tagged(p string) string { return "{" + strings.TrimSuffix(p, ":") + "}:" }

func TestClusterRevocationStoreConformance(t *testing.T) {
	c := testenv.RedisCluster(t)
	capabilitytest.RunRevocationStore(t, func(t *testing.T) capability.RevocationStore {
		return capredis.NewRevocationStore(c, capredis.Config{Prefix: tagged(prefixFor(t))})
	}, time.Sleep)
}

func TestClusterReplayStoreConformance(t *testing.T) {
	c := testenv.RedisCluster(t)
	capabilitytest.RunReplayStore(t, func(t *testing.T) capability.ReplayStore {
		// No hash tag: nonces spread over every shard.
		return capredis.NewReplayStore(c, capredis.Config{Prefix: testenv.Unique(t) + ":"})
	}, time.Sleep)
}

// TestClusterCrossProcessRevocation: two Verifiers with their own cluster
// clients; a revocation through one reaches the other's cache over
// sharded pub/sub, and the other's feed stays live (its heartbeats and the
// revocation are ordered by one shard).
func TestClusterCrossProcessRevocation(t *testing.T) {
	c1, c2 := testenv.RedisCluster(t), testenv.RedisCluster(t)
	crossProcess(t, c1, c2, tagged(testenv.Unique(t)))
}

// TestClusterPrefixNeedsHashTag: on a cluster, a revocation store whose
// prefix has no hash tag refuses every call with TALOS_INVALID_INPUT, and a
// Verifier on it denies (fail closed) instead of checking keys spread over
// shards.
func TestClusterPrefixNeedsHashTag(t *testing.T) {
	c := testenv.RedisCluster(t)
	st := capredis.NewRevocationStore(c, capredis.Config{Prefix: testenv.Unique(t) + ":"})
	ctx := context.Background()
	for _, err := range []error{st.Revoke(ctx, "hash:x", time.Time{}), func() error { _, err := st.AnyRevoked(ctx, []string{"hash:x"}); return err }()} {
		var ce *contracts.Error
		if !errors.As(err, &ce) || ce.Code != contracts.CodeInvalidInput {
			t.Fatalf("got %v, want a TALOS_INVALID_INPUT *contracts.Error", err)
		}
	}
	root, holder := wallet(t, 1), wallet(t, 2)
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()}, Revocations: st})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.RevocationFeedLive() {
		t.Fatal("feed live without a usable prefix")
	}
	tok, _ := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	d, err := v.Authorize(ctx, capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"})
	if d.Allowed || d.Reason != capability.ReasonStoreUnavailable || err == nil {
		t.Fatalf("got %+v %v, want STORE_UNAVAILABLE", d, err)
	}
}

func TestHasHashTag(t *testing.T) {
	for p, want := range map[string]bool{
		"{talos}:": true, "a{b}c": true, "{}:": false, "}{a}": true, "{a": false,
		"talos:": false, "": false, "{}{a}": false, "x{y}}": true,
	} {
		if got := capredis.HasHashTag(p); got != want {
			t.Errorf("HasHashTag(%q) = %v, want %v", p, got, want)
		}
	}
}

func wallet(t *testing.T, b byte) *identity.Wallet {
	t.Helper()
	s := make([]byte, 32)
	s[31] = b
	w, err := identity.WalletFromSeed(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestClusterFailoverFailsClosed runs a Verifier on a private 3-master
// cluster (one replica each) and crashes (SIGKILL) the master that owns
// the store's slot. The feed stops being live at once; until the replica
// takes over, decisions the cache cannot serve are denied with
// STORE_UNAVAILABLE; a revocation made once the new master answers is
// enforced on every request from MaxStaleness after Revoke returned, and
// the feed comes back live on the new master. The killed node then rejoins and the cluster is ok again.
func TestClusterFailoverFailsClosed(t *testing.T) {
	pc := testenv.StartRedisCluster(t, 3, 1)
	opts := func(c *goredis.ClusterClient) *goredis.ClusterClient {
		o := c.Options()
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		return goredis.NewClusterClient(o)
	}
	c1, c2 := opts(pc.Client(t)), opts(pc.Client(t))
	t.Cleanup(func() { c1.Close(); c2.Close() })
	const prefix, staleness = "{capfailover}:", 250 * time.Millisecond
	root, holder := wallet(t, 3), wallet(t, 4)
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()},
		Revocations: capredis.NewRevocationStore(c1, capredis.Config{Prefix: prefix, MaxStaleness: staleness})})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	admin := capredis.NewRevocationStore(c2, capredis.Config{Prefix: prefix})
	waitLive(t, v, true)
	tok, _ := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	req := capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"}
	ctx := context.Background()
	for range 2 {
		if d, err := v.Authorize(ctx, req); !d.Allowed || err != nil {
			t.Fatalf("before the crash: %+v %v", d, err)
		}
	}
	master := pc.MasterFor(t, prefix+"revocations")
	pc.Kill(t, master)
	killed := time.Now()
	waitLive(t, v, false)

	// Until the revocation is stored on the new master: a decision is
	// either a store answer (allowed: not revoked yet) or a denial.
	unavailable := 0
	var revoked time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := v.Authorize(ctx, req)
		if !d.Allowed {
			if d.Reason != capability.ReasonStoreUnavailable || err == nil {
				t.Fatalf("during failover: %+v %v", d, err)
			}
			unavailable++
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		rerr := admin.Revoke(rctx, capability.HashKey(tok.Hash()), time.Now().Add(time.Hour))
		cancel()
		if rerr == nil {
			revoked = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover after 30 s: %v (%v); slot master now %s", rerr, errors.Unwrap(rerr), pc.MasterFor(t, prefix+"revocations"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if unavailable == 0 {
		t.Fatal("no decision failed closed while the slot's master was down")
	}
	t.Logf("master %s killed; %d decisions denied STORE_UNAVAILABLE; Revoke succeeded on the new master %v after the kill", master, unavailable, revoked.Sub(killed).Round(time.Millisecond))
	// MaxStaleness after Revoke returned the chain is never allowed again,
	// whatever the feed's state, and the feed recovers on the new master.
	time.Sleep(time.Until(revoked.Add(staleness)))
	for !v.RevocationFeedLive() {
		if d, _ := v.Authorize(ctx, req); d.Allowed {
			t.Fatal("revoked chain allowed after failover")
		}
		if time.Now().After(deadline) {
			t.Fatal("feed not live again 30 s after the crash")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d, err := v.Authorize(ctx, req); d.Reason != capability.ReasonRevoked || err != nil {
		t.Fatalf("after failover: %+v %v", d, err)
	}
	// The killed node rejoins (as a replica of the new master).
	pc.Restart(t, master)
	pc.WaitOK(t)
	if got := pc.MasterFor(t, prefix+"revocations"); got == master {
		t.Fatalf("slot still on the killed node %s", master)
	}
	if d, _ := v.Authorize(ctx, req); d.Reason != capability.ReasonRevoked {
		t.Fatalf("after rejoin: %+v", d)
	}
}

// TestClusterManualFailover moves the store's slot to a replica with
// CLUSTER FAILOVER while a Verifier watches it: the old master stays up
// and ends the shard subscription (SUNSUBSCRIBE), the feed subscribes
// again on the new master and comes back live, and a revocation made
// there reaches the Verifier's cache through it.
func TestClusterManualFailover(t *testing.T) {
	pc := testenv.StartRedisCluster(t, 3, 1)
	c1, c2 := pc.Client(t), pc.Client(t)
	const prefix, staleness = "{capmanual}:", 250 * time.Millisecond
	root, holder := wallet(t, 5), wallet(t, 6)
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()},
		Revocations: capredis.NewRevocationStore(c1, capredis.Config{Prefix: prefix, MaxStaleness: staleness})})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	admin := capredis.NewRevocationStore(c2, capredis.Config{Prefix: prefix})
	waitLive(t, v, true)
	tok, _ := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	req := capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"}
	ctx := context.Background()
	if d, err := v.Authorize(ctx, req); !d.Allowed || err != nil {
		t.Fatalf("before the failover: %+v %v", d, err)
	}
	old, now := pc.Failover(t, prefix+"revocations")
	t.Logf("slot moved from %s to %s", old, now)
	waitLive(t, v, true)
	// Wait for a heartbeat proof on the new master's subscription: the
	// feed is live only through a subscription to the slot's owner.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := admin.Revoke(ctx, capability.HashKey(tok.Hash()), time.Now().Add(time.Hour))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoke after the failover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		d, err := v.Authorize(ctx, req)
		if err == nil && d.Reason == capability.ReasonRevoked && v.RevocationFeedLive() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the failover: %+v %v (feed live %v)", d, err, v.RevocationFeedLive())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkAnyRevoked compares one chain check (3 keys, one EXISTS) on
// the standalone Redis and on the Redis Cluster, in one run.
func BenchmarkAnyRevoked(b *testing.B) {
	keys := []string{"hash:a", "hash:b", "nonce:c"}
	run := func(b *testing.B, c goredis.UniversalClient, prefix string) {
		st := capredis.NewRevocationStore(c, capredis.Config{Prefix: prefix})
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := st.AnyRevoked(ctx, keys); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("redis", func(b *testing.B) {
		c, real := testenv.Redis(b)
		if !real {
			b.Skip("needs TALOS_TEST_REDIS_URL")
		}
		run(b, c, testenv.Unique(b)+":")
	})
	b.Run("cluster", func(b *testing.B) {
		run(b, testenv.RedisCluster(b), tagged(testenv.Unique(b)))
	})
}

// TestScriptsDeclareKeys runs the revocation store's conformance suite
// through a client whose scripts fail on any key not declared in KEYS
// (Redis Cluster's rule, which a single server does not enforce).
func TestScriptsDeclareKeys(t *testing.T) {
	u, real := testenv.Redis(t)
	if !real {
		t.Skip("needs TALOS_TEST_REDIS_URL")
	}
	c := goredis.NewClient(u.(*goredis.Client).Options())
	t.Cleanup(func() { c.Close() })
	testenv.CheckDeclaredKeys(c)
	capabilitytest.RunRevocationStore(t, func(t *testing.T) capability.RevocationStore {
		return capredis.NewRevocationStore(c, capredis.Config{Prefix: prefixFor(t)})
	}, time.Sleep)
}
