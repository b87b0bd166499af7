package redis_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// deadClient returns a client for a port nobody listens on.
func deadClient(t *testing.T) *goredis.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStoreDownDenies(t *testing.T) {
	b, err := bredis.New(deadClient(t), bredis.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := budget.Scope{ID: "agent:1", Limit: 1000}
	r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1})
	if r.Allowed || !errors.Is(err, contracts.ErrTransport) {
		t.Fatalf("Reserve on a dead store = %+v, %v; want denied with TALOS_TRANSPORT_ERROR", r, err)
	}
	if _, err := b.Commit(t.Context(), "agent:1~0123456789abcdef0123456789abcdef", 1); !errors.Is(err, contracts.ErrTransport) {
		t.Fatalf("Commit = %v", err)
	}
	if _, err := b.Usage(t.Context(), "agent:1", s); !errors.Is(err, contracts.ErrTransport) {
		t.Fatalf("Usage = %v", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("error text leaks the store address: %v", err)
	}

	rates, err := bredis.NewRates(deadClient(t), "")
	if err != nil {
		t.Fatal(err)
	}
	lim, err := budget.NewLimiter(budget.LimiterConfig{Store: rates, Surface: "llm", Limit: budget.PerMinute(1)})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := lim.Allow(t.Context(), "k", 1); res.Allowed || !errors.Is(err, contracts.ErrTransport) {
		t.Fatalf("Allow on a dead store = %+v, %v; want denied", res, err)
	}
	lim, err = budget.NewLimiter(budget.LimiterConfig{Store: rates, Surface: "llm", Limit: budget.PerMinute(1), Fallback: budget.NewMemRates(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := lim.Allow(t.Context(), "k", 1); !res.Allowed || !res.Degraded || err != nil {
		t.Fatalf("Allow with a local fallback = %+v, %v", res, err)
	}
	if res, err := lim.Allow(t.Context(), "k", 1); res.Allowed || !res.Degraded || err != nil {
		t.Fatalf("second Allow with a local fallback = %+v, %v; want the fallback's denial", res, err)
	}
}

func TestTimeoutDenies(t *testing.T) {
	c, _ := testenv.Redis(t)
	b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":", Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{{ID: "a", Limit: 10}}, Amount: 1})
	if r.Allowed || !errors.Is(err, contracts.ErrTransportTimeout) {
		t.Fatalf("Reserve with an expired deadline = %+v, %v; want TALOS_TRANSPORT_TIMEOUT", r, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b2 := newBudget(t)
	if r, err := b2.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{{ID: "a", Limit: 10}}, Amount: 1}); r.Allowed || err == nil {
		t.Fatalf("Reserve with a cancelled context = %+v, %v", r, err)
	}
}

func TestScriptCacheFlushed(t *testing.T) {
	c, _ := testenv.Redis(t)
	b := newBudget(t)
	s := budget.Scope{ID: budgettest.Name("agent"), Limit: 1000, Period: budget.Lifetime()}
	r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 10})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	if err := c.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	// EVALSHA answers NOSCRIPT; the script is sent again and the call succeeds.
	if _, err := b.Commit(t.Context(), r.ID, 5); err != nil {
		t.Fatalf("Commit after SCRIPT FLUSH: %v", err)
	}
	if u, err := b.Usage(t.Context(), s.ID, s); err != nil || u.Spent != 5 {
		t.Fatalf("Usage after SCRIPT FLUSH = %+v, %v", u, err)
	}
}

func TestKeysAreHashTaggedByGroup(t *testing.T) {
	c, _ := testenv.Redis(t)
	prefix := testenv.Unique(t) + ":"
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	group := budgettest.Name("org")
	scopes := []budget.Scope{
		{ID: "agent:x", Limit: 100, Period: budget.Daily()},
		{ID: "team:y", Limit: 100, Period: budget.Rolling(time.Hour)},
		{ID: group, Limit: 100, Period: budget.Lifetime()},
	}
	r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: scopes, Amount: 10, IdempotencyKey: "some key"})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	if _, err := b.Commit(t.Context(), r.ID, 3); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	h, z := prefix+"{"+group+"}:h", prefix+"{"+group+"}:z"
	if want := []string{prefix + "layout", h, z}; !slices.Equal(keys, want) { // sorted
		t.Fatalf("keys %q, want %q", keys, want)
	}
	if v, err := c.Get(t.Context(), prefix+"layout").Result(); err != nil || v != "5" {
		t.Fatalf("layout marker %q, %v", v, err)
	}
	fields, err := c.HKeys(t.Context(), h).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, nonce, _ := strings.Cut(r.ID, "~")
	slices.Sort(fields)
	want := []string{"c:d:agent:x", "c:r3600000000:team:y", "c:t:" + group, "i:some key", "n", "r:" + nonce}
	if !slices.Equal(fields, want) {
		t.Fatalf("hash fields %q, want %q", fields, want)
	}
	// Every field that is ever forgotten has its time in the set: the
	// record (its idempotency field goes with it) and the scopes with a
	// period; the lifetime scope is kept.
	members, err := c.ZRangeWithScores(t.Context(), z, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range members {
		got[m.Member.(string)] = m.Score
	}
	now := float64(time.Now().UnixMicro())
	for _, f := range []string{"c:d:agent:x", "c:r3600000000:team:y", "r:" + nonce} {
		if s, ok := got[f]; !ok || s <= now {
			t.Errorf("field %s: forget time %v (now %v)", f, s, now)
		}
	}
	if len(got) != 3 {
		t.Errorf("set members %v, want 3", got)
	}
}

func TestRedisConfig(t *testing.T) {
	c, _ := testenv.Redis(t)
	for _, cfg := range []bredis.Config{{Prefix: "a{b}"}, {Retention: -1}, {Timeout: -1}, {Retention: budget.MaxRetention + 1}} {
		if _, err := bredis.New(c, cfg); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("New(%+v) = %v, want TALOS_INVALID_INPUT", cfg, err)
		}
	}
	if _, err := bredis.New(nil, bredis.Config{}); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Error("New(nil client) accepted")
	}
	if _, err := bredis.NewRates(c, "x}"); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Error("NewRates with a brace prefix accepted")
	}
}

// A scope key that vanishes (evicted, flushed or expired) must never leave
// a negative reserved amount behind, which would admit more than the limit.
func TestLostScopeKeyNeverUnderflows(t *testing.T) {
	c, _ := testenv.Redis(t)
	prefix := testenv.Unique(t) + ":"
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	s := budget.Scope{ID: budgettest.Name("agent"), Limit: 1000, Period: budget.Monthly()}
	req := budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 600}
	r1, err1 := b.Reserve(t.Context(), req)
	r2, err2 := b.Reserve(t.Context(), req)
	if err1 != nil || err2 != nil || !r1.Allowed || r2.Allowed {
		t.Fatalf("setup: %+v %v, %+v %v", r1, err1, r2, err2)
	}
	if err := c.HDel(t.Context(), prefix+"{"+s.ID+"}:h", "c:m:"+s.ID).Err(); err != nil {
		t.Fatal(err)
	}
	r3, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1000})
	if err != nil || !r3.Allowed {
		t.Fatalf("Reserve on the re-created key = %+v, %v", r3, err)
	}
	if err := b.Release(t.Context(), r1.ID); err != nil {
		t.Fatal(err)
	}
	if u, err := b.Usage(t.Context(), s.ID, s); err != nil || u.Reserved != 1000 {
		t.Fatalf("Usage after releasing a reservation of the lost key = %+v, %v; want 1000 reserved", u, err)
	}
	if r, _ := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); r.Allowed {
		t.Fatal("overspend after a lost scope key")
	}
}

// Two rolling windows that differ below a microsecond name the same key; a
// request holding both is refused rather than counted once and released
// twice.
func TestSameKeyScopesRefused(t *testing.T) {
	c, _ := testenv.Redis(t)
	b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":"})
	if err != nil {
		t.Fatal(err)
	}
	id := budgettest.Name("agent")
	req := budget.ReserveRequest{Amount: 1, Scopes: []budget.Scope{
		{ID: id, Limit: 10, Period: budget.Rolling(time.Hour)},
		{ID: id, Limit: 10, Period: budget.Rolling(time.Hour + time.Nanosecond)},
	}}
	if r, err := b.Reserve(t.Context(), req); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("Reserve = %+v, %v; want TALOS_INVALID_INPUT", r, err)
	}
}
