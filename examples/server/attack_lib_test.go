package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/capability/capabilitytest"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// tryAuthorize sends an attested POST /v1/authorize bounded by d and
// reports whether the server answered "allowed" (a timeout, an error
// status or a denial are all "not allowed").
func tryAuthorize(t *testing.T, a *agent, token string, d time.Duration) (allowed bool, status int, body decisionBody) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", a.base+"/v1/authorize",
		strings.NewReader(string(mustJSON(authorizeRequest{Capability: token, Tool: "files", Action: "read"}))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return false, 0, body
	}
	status = decode(t, resp, &body)
	return status == http.StatusOK && body.Allowed, status, body
}

// Issue 10 item 3 against a live server: a replica in Redis mode whose
// Redis connection is black-holed (a loopback proxy that stops forwarding
// without closing) must not serve a chain revoked through another
// connection once MaxStaleness has passed.
func TestAttackSilentPartitionRevocation(t *testing.T) {
	direct, real := testenv.Redis(t)
	if !real {
		t.Skip("needs the real Redis at TALOS_TEST_REDIS_URL")
	}
	proxy := capabilitytest.NewProxy(t, direct.(*redis.Client).Options().Addr)
	cfg := testConfig(t)
	cfg.RedisURL = "redis://" + proxy.Addr() + "/0"
	ts := newTestServer(t, cfg)
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-p")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	waitFor(t, ts.core.verifier.RevocationFeedLive)
	for range 2 { // the second decision comes from the replica's cache
		if d := authorize(t, alice, tok.Token, "files", "read"); !d.Allowed {
			t.Fatalf("before the partition: %+v", d)
		}
	}
	proxy.Blackhole()
	// Revoked through another connection to the same server (as another
	// replica or an operator would).
	admin := capredis.NewRevocationStore(direct, capredis.Config{})
	if err := admin.Revoke(context.Background(), capability.HashKey(tok.CapabilityHash), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	time.Sleep(time.Until(revoked.Add(capredis.DefaultMaxStaleness)))
	// The replica's Verifier, asked directly: no cached answer any more.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	d, err := ts.core.verifier.Authorize(ctx, capability.Request{Capability: tok.Token, Principal: alice.w.DID(), Tool: "files", Action: "read"})
	cancel()
	if d.Allowed || d.Reason != capability.ReasonStoreUnavailable || err == nil {
		t.Fatalf("replica verifier %v after the revocation: %+v %v, want STORE_UNAVAILABLE", time.Since(revoked), d, err)
	}
	// And over HTTP: not allowed (the request fails closed or times out).
	if ok, st, body := tryAuthorize(t, alice, tok.Token, 3*time.Second); ok {
		t.Fatalf("replica allowed a revoked chain over HTTP: %d %+v", st, body)
	}
	// The partition heals: the feed comes back and the store says revoked.
	proxy.Restore()
	waitFor(t, ts.core.verifier.RevocationFeedLive)
	if d := authorize(t, alice, tok.Token, "files", "read"); d.Allowed || d.Reason != string(capability.ReasonRevoked) {
		t.Fatalf("after the partition: %+v", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Issue 10 item 5 against a live server: one registered principal fills
// its share of the in-memory nonce store with validly signed requests; it
// is then refused (RATE_LIMITED), and another principal still gets
// through.
func TestAttackNonceFloodOtherPrincipalServed(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	ts.serve(t)
	flooder := newAgent(t, ts, "flooder", "team-f")
	victim := newAgent(t, ts, "victim", "team-v")
	ftok := issue(t, ts, flooder.did, false, grant("files", "read"))
	vtok := issue(t, ts, victim.did, false, grant("files", "read"))
	// Real signed requests first...
	for i := range 20 {
		if d := authorize(t, flooder, ftok.Token, "files", "read"); !d.Allowed {
			t.Fatalf("flood request %d: %+v", i, d)
		}
	}
	// ...then the rest of the flood straight into the server's store, as
	// the verifier would claim it for each further signed request (sending
	// 65,536 requests over HTTP would take minutes on this machine).
	store, ok := ts.core.nonces.(identity.PrincipalNonceStore)
	if !ok {
		t.Fatalf("embedded nonce store %T has no per-principal quota", ts.core.nonces)
	}
	ctx := context.Background()
	// The default quota of a 1<<20-key store is 1/16 of it; the token
	// bucket (DefaultNonceBurst, then DefaultNonceRate a second) paces the
	// flooder on the way there.
	const quota = 1 << 20 / 16
	filled := 20 // one attestation nonce per request above
	deadline := time.Now().Add(time.Minute)
	for i := 0; filled < quota; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("flooder held back at %d claims, before its quota", filled)
		}
		_, err := store.ClaimFor(ctx, flooder.did, fmt.Sprintf("flood-%d", i), identity.DefaultNonceTTL)
		switch {
		case err == nil:
			filled++
		case errors.Is(err, identity.ErrNonceRateLimited):
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("flood claim %d: %v", i, err)
		}
	}
	var eb struct {
		Code string `json:"code"`
	}
	if st := flooder.call("POST", "/v1/authorize", authorizeRequest{Capability: ftok.Token, Tool: "files", Action: "read"}, &eb); st != http.StatusTooManyRequests || eb.Code != string(contracts.CodeRateLimited) {
		t.Fatalf("flooder after %d claims: %d %+v, want 429 RATE_LIMITED", filled, st, eb)
	}
	for i := range 5 {
		if d := authorize(t, victim, vtok.Token, "files", "read"); !d.Allowed {
			t.Fatalf("victim request %d after the flood: %+v", i, d)
		}
	}
}
