package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/capability/capabilitytest"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// server returns a client and a way to let time pass: the real Redis when
// TALOS_TEST_REDIS_URL is set, else a miniredis whose clock is
// fast-forwarded (miniredis does not expire keys on its own).
func server(t *testing.T) (goredis.UniversalClient, func(time.Duration)) {
	if c, real := testenv.Redis(t); real {
		return c, time.Sleep
	}
	m := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, m.FastForward
}

func TestRevocationStoreConformance(t *testing.T) {
	c, wait := server(t)
	capabilitytest.RunRevocationStore(t, func(t *testing.T) capability.RevocationStore {
		// One prefix per subtest, shared by every store the subtest makes.
		return capredis.NewRevocationStore(c, capredis.Config{Prefix: prefixFor(t)})
	}, wait)
}

var (
	prefixes   = map[string]string{}
	sharedName string
)

func prefixFor(t *testing.T) string {
	p, ok := prefixes[t.Name()]
	if !ok {
		p = testenv.Unique(t) + ":"
		prefixes[t.Name()] = p
	}
	return p
}

func TestReplayStoreConformance(t *testing.T) {
	c, wait := server(t)
	capabilitytest.RunReplayStore(t, func(t *testing.T) capability.ReplayStore {
		return capredis.NewReplayStore(c, capredis.Config{Prefix: testenv.Unique(t) + ":"})
	}, wait)
}

func TestMemStoresConformance(t *testing.T) {
	capabilitytest.RunReplayStore(t, func(t *testing.T) capability.ReplayStore { return identity.NewMemNonceStore(1000) }, nil)
	var shared *capability.MemRevocationStore
	capabilitytest.RunRevocationStore(t, func(t *testing.T) capability.RevocationStore {
		// Watch needs two stores sharing state: hand out the same one.
		if shared == nil || prefixFor(t) != sharedName {
			shared, sharedName = capability.NewMemRevocationStore(nil), prefixFor(t)
		}
		return shared
	}, nil)
}

// TestCrossProcessRevocation runs two Verifiers, each with its own client
// and store, on one Redis: a revocation made through one reaches the
// other's cache.
func TestCrossProcessRevocation(t *testing.T) {
	c1, real := testenv.Redis(t)
	var c2 = c1
	if real {
		c2, _ = testenv.Redis(t) // a second connection pool, as a second process would have
	}
	crossProcess(t, c1, c2, testenv.Unique(t)+":")
}

func crossProcess(t *testing.T, c1, c2 goredis.UniversalClient, prefix string) {
	seed := func(b byte) *identity.Wallet {
		s := make([]byte, 32)
		s[31] = b
		w, err := identity.WalletFromSeed(s)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	root, holder := seed(1), seed(2)
	mk := func(c interface{}) *capability.Verifier {
		st := capredis.NewRevocationStore(c1, capredis.Config{Prefix: prefix, MaxStaleness: time.Second})
		if c != nil {
			st = capredis.NewRevocationStore(c2, capredis.Config{Prefix: prefix, MaxStaleness: time.Second})
		}
		v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()}, Revocations: st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		return v
	}
	a, b := mk(nil), mk(struct{}{})
	for _, v := range []*capability.Verifier{a, b} {
		waitLive(t, v, true)
	}
	tok, err := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"}
	ctx := context.Background()
	for _, v := range []*capability.Verifier{a, b} {
		// Twice: the second answer comes from the cache.
		for range 2 {
			if d, err := v.Authorize(ctx, req); !d.Allowed || err != nil {
				t.Fatalf("before revocation: %+v %v", d, err)
			}
		}
	}
	if err := a.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if d, _ := a.Authorize(ctx, req); d.Reason != capability.ReasonRevoked {
		t.Fatalf("revoking verifier: %+v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := b.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reason == capability.ReasonRevoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("other verifier still allows after 5s: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !b.RevocationFeedLive() {
		t.Fatal("the other verifier's feed dropped: the revocation was not delivered by pub/sub")
	}
}

func waitLive(t *testing.T, v *capability.Verifier, want bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if v.RevocationFeedLive() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("revocation feed live = %v after 5s", !want)
}

// TestDisconnectFailsClosed stops the server under a Verifier with a
// cached chain: the feed goes dead, requests are denied with
// STORE_UNAVAILABLE instead of being served from the cache, and after the
// server returns the feed resubscribes and decisions resume. It needs
// miniredis, which can be stopped and restarted.
func TestDisconnectFailsClosed(t *testing.T) {
	m := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	s := make([]byte, 32)
	root, _ := identity.WalletFromSeed(s)
	s[0] = 9
	holder, _ := identity.WalletFromSeed(s)
	st := capredis.NewRevocationStore(c, capredis.Config{MaxStaleness: 200 * time.Millisecond})
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()}, Revocations: st})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitLive(t, v, true)
	tok, _ := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	req := capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"}
	ctx := context.Background()
	if d, err := v.Authorize(ctx, req); !d.Allowed || err != nil {
		t.Fatalf("%+v %v", d, err)
	}
	m.Close()
	waitLive(t, v, false)
	d, err := v.Authorize(ctx, req)
	if d.Allowed || d.Reason != capability.ReasonStoreUnavailable || err == nil {
		t.Fatalf("with the server down: %+v %v", d, err)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLive(t, v, true)
	if d, err := v.Authorize(ctx, req); !d.Allowed || err != nil {
		t.Fatalf("after restart: %+v %v", d, err)
	}
}

func TestStoreErrorsDeny(t *testing.T) {
	c, _ := testenv.Redis(t)
	st := capredis.NewRevocationStore(c, capredis.Config{Prefix: testenv.Unique(t) + ":"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.AnyRevoked(ctx, []string{"hash:x"}); err == nil {
		t.Fatal("cancelled check succeeded")
	}
	rs := capredis.NewReplayStore(c, capredis.Config{})
	if _, err := rs.Claim(ctx, "k", time.Minute); err == nil {
		t.Fatal("cancelled claim succeeded")
	}
}

// Issue 10 item 3: a replica whose Redis connection stops forwarding
// without closing (a black-holing proxy on loopback in front of the test
// server) must enforce a revocation made through another connection
// within MaxStaleness, or fail closed: by then it no longer serves the
// chain from its cache.
func TestSilentPartitionBoundedStaleness(t *testing.T) {
	direct, _ := testenv.Redis(t)
	proxy := capabilitytest.NewProxy(t, direct.(*goredis.Client).Options().Addr)
	viaProxy := goredis.NewClient(&goredis.Options{Addr: proxy.Addr(), MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { viaProxy.Close() })
	prefix := testenv.Unique(t) + ":"
	const staleness = 250 * time.Millisecond
	s := make([]byte, 32)
	root, _ := identity.WalletFromSeed(s)
	s[0] = 7
	holder, _ := identity.WalletFromSeed(s)
	replica, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()},
		Revocations: capredis.NewRevocationStore(viaProxy, capredis.Config{Prefix: prefix, MaxStaleness: staleness})})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	admin := capredis.NewRevocationStore(direct, capredis.Config{Prefix: prefix})
	waitLive(t, replica, true)
	tok, _ := capability.Issue(root.Signer(), holder.DID(), []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	req := capability.Request{Capability: tok.Encode(), Principal: holder.DID(), Tool: "fs", Action: "read"}
	ctx := context.Background()
	for range 2 { // the second answer comes from the cache
		if d, err := replica.Authorize(ctx, req); !d.Allowed || err != nil {
			t.Fatalf("before the partition: %+v %v", d, err)
		}
	}
	proxy.Blackhole()
	if err := admin.Revoke(ctx, capability.HashKey(tok.Hash()), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	time.Sleep(time.Until(revoked.Add(staleness)))
	// MaxStaleness after Revoke returned: the replica cannot have heard of
	// the revocation, so it must not answer from its cache.
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	d, err := replica.Authorize(actx, req)
	cancel()
	if d.Allowed {
		t.Fatalf("replica still allows a revoked chain %v after Revoke returned (feed live: %v)", time.Since(revoked), replica.RevocationFeedLive())
	}
	if d.Reason != capability.ReasonStoreUnavailable || err == nil {
		t.Fatalf("behind the partition: %+v %v, want STORE_UNAVAILABLE", d, err)
	}
	if replica.RevocationFeedLive() {
		t.Fatal("feed live behind a black hole")
	}
	// When the network heals the feed comes back and the store says revoked.
	proxy.Restore()
	waitLive(t, replica, true)
	if d, err := replica.Authorize(ctx, req); d.Reason != capability.ReasonRevoked || err != nil {
		t.Fatalf("after the partition: %+v %v", d, err)
	}
}
