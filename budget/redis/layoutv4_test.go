package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// checkRefused asserts that every method of a Budget on c fails with
// ErrLayout and that nothing was written under prefix.
func checkRefused(t *testing.T, c goredis.UniversalClient, cfg bredis.Config, before int) {
	t.Helper()
	b, err := bredis.New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s := budget.Scope{ID: "org:1", Limit: 100, Period: budget.Lifetime()}
	req := budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}
	if err := b.CheckLayout(ctx); !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("CheckLayout = %v, want ErrLayout", err)
	}
	if r, err := b.Reserve(ctx, req); r.Allowed || !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("Reserve = %+v, %v; want denied with ErrLayout", r, err)
	}
	if r, err := b.Charge(ctx, req); r.Allowed || !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("Charge = %+v, %v; want denied with ErrLayout", r, err)
	}
	if _, err := b.Commit(ctx, "org:1~0123456789abcdef0123456789abcdef", 1); !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("Commit = %v, want ErrLayout", err)
	}
	if err := b.Release(ctx, "org:1~0123456789abcdef0123456789abcdef"); !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("Release = %v, want ErrLayout", err)
	}
	if _, err := b.Usage(ctx, "org:1", s); !errors.Is(err, bredis.ErrLayout) {
		t.Errorf("Usage = %v, want ErrLayout", err)
	}
	if contracts.CodeOf(bredis.ErrLayout) != contracts.CodeInternal {
		t.Errorf("ErrLayout code %q", contracts.CodeOf(bredis.ErrLayout))
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = bredis.DefaultPrefix
	}
	if n := countKeys(t, c, prefix+"*"); n != before {
		t.Errorf("%d keys under %s after the refusal, want %d", n, prefix, before)
	}
}

// countKeys counts the keys matching pattern (on every master of a cluster).
func countKeys(t *testing.T, c goredis.UniversalClient, pattern string) int {
	t.Helper()
	var n atomic.Int64
	count := func(ctx context.Context, c goredis.Cmdable) error {
		keys, err := c.Keys(ctx, pattern).Result()
		n.Add(int64(len(keys)))
		return err
	}
	var err error
	if cc, ok := c.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(t.Context(), func(ctx context.Context, m *goredis.Client) error { return count(ctx, m) })
	} else {
		err = count(t.Context(), c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return int(n.Load())
}

// Data of an earlier layout under the prefix (v3 scope, record, index
// and expiry keys), or a marker of another version, makes every method
// fail with ErrLayout, and nothing is written: the old reservations and
// spend are never silently ignored. Once the old data is gone the Budget
// marks the prefix and works.
func TestOldLayoutRefused(t *testing.T) {
	c, _ := testenv.Redis(t)
	ctx := t.Context()
	for _, old := range []string{"{org:1}:c:t:org:1", "{org:1}:r:0123456789abcdef0123456789abcdef", "{org:1}:i:k", "{org:1}:exp", "{org:1}:s:org:1"} {
		prefix := testenv.Unique(t) + ":"
		if err := c.Set(ctx, prefix+old, "1 0 0 0 5", 0).Err(); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, c, bredis.Config{Prefix: prefix}, 1)
		if err := c.Del(ctx, prefix+old).Err(); err != nil {
			t.Fatal(err)
		}
		b, err := bredis.New(c, bredis.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		s := budget.Scope{ID: "org:1", Limit: 100, Period: budget.Lifetime()}
		if r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); err != nil || !r.Allowed {
			t.Fatalf("Reserve once the old data is gone = %+v, %v", r, err)
		}
		if v, err := c.Get(ctx, prefix+"layout").Result(); err != nil || v != "5" {
			t.Fatalf("marker %q, %v", v, err)
		}
	}
	// Rate-limit keys under the same prefix are not budget data.
	prefix := testenv.Unique(t) + ":"
	rates, err := bredis.NewRates(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rates.AllowN(ctx, "llm", "k", budget.PerMinute(10), 1); err != nil {
		t.Fatal(err)
	}
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckLayout(ctx); err != nil {
		t.Fatalf("CheckLayout beside rate-limit keys: %v", err)
	}
	// A marker of another version (4: the previous layout, 6: a later one).
	for _, marker := range []string{"4", "6"} {
		prefix = testenv.Unique(t) + ":"
		if err := c.Set(ctx, prefix+"layout", marker, 0).Err(); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, c, bredis.Config{Prefix: prefix}, 1)
	}
	// Layout v4 data (its marker, a group hash with a scope and a v4
	// record, the group's set): its records cannot be read by v5.
	prefix = testenv.Unique(t) + ":"
	v4 := []any{"c:t:org:1", "1 0 0 0 5", "r:0123456789abcdef0123456789abcdef", `["1","5","1","1","","","0","0","","","","","","","c:t:org:1","1","0","100","3","0","0"]`}
	if err := c.Set(ctx, prefix+"layout", "4", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, prefix+"{org:1}:h", v4...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(ctx, prefix+"{org:1}:z", goredis.Z{Score: 1, Member: "r:0123456789abcdef0123456789abcdef"}).Err(); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, c, bredis.Config{Prefix: prefix}, 3)
}

// With DefaultPrefix, data under an earlier default prefix
// (talos:budget:v3:, talos:budget:v4:) is refused too: an upgrade with the
// default settings would otherwise start from empty state. Run on
// miniredis so the shared server's default prefixes are never touched.
func TestOldDefaultPrefixRefused(t *testing.T) {
	for _, old := range []string{"talos:budget:v3:{org:1}:c:t:org:1", "talos:budget:v4:layout", "talos:budget:v4:{org:1}:h"} {
		srv := miniredis.RunT(t)
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { c.Close() })
		if err := c.Set(t.Context(), old, "1 0 0 0 5", 0).Err(); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, c, bredis.Config{}, 0)
	}
}

// On a cluster the old keys are looked for on every master.
func TestClusterOldLayoutRefused(t *testing.T) {
	c := sharedCluster(t)
	prefix := testenv.Unique(t) + ":"
	// Groups whose slots are spread over the masters.
	for _, g := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := c.Set(t.Context(), prefix+"{"+g+"}:exp", "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	checkRefused(t, c, bredis.Config{Prefix: prefix}, 6)
}

// The sweep forgets what the old layout let Redis expire: an expired
// hold is released, and after retention its record and idempotency field
// are deleted; a daily scope's field once its day and every reservation
// that could settle into it are over; a lifetime scope never. miniredis
// moves the server's clock.
func TestSweepForgets(t *testing.T) {
	srv := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	testenv.CheckDeclaredKeys(c)
	b, err := bredis.New(c, bredis.Config{Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	srv.SetTime(start)
	org := budget.Scope{ID: budgettest.Name("org"), Limit: 1000, Period: budget.Lifetime()}
	day := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Daily()}
	scopes := []budget.Scope{day, org}
	r1, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Group: org.ID, Amount: 100, IdempotencyKey: "k1", TTL: time.Minute})
	if err != nil || !r1.Allowed {
		t.Fatal(r1, err)
	}
	if _, err := b.Commit(ctx, r1.ID, 40); err != nil {
		t.Fatal(err)
	}
	r2, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Group: org.ID, Amount: 300, TTL: time.Minute})
	if err != nil || !r2.Allowed {
		t.Fatal(r2, err)
	}
	h := bredis.DefaultPrefix + "{" + org.ID + "}:h"
	_, n1, _ := strings.Cut(r1.ID, "~")
	_, n2, _ := strings.Cut(r2.ID, "~")
	fields := func() map[string]string {
		t.Helper()
		m, err := c.HGetAll(ctx, h).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if f := fields(); len(f) != 6 { // 2 scopes, 2 records, 1 idempotency field, n
		t.Fatalf("fields %q", f)
	}
	// The hold expires; the next call releases it.
	srv.SetTime(start.Add(2 * time.Minute))
	if u, err := b.Usage(ctx, org.ID, org); err != nil || u.Reserved != 0 || u.Spent != 40 {
		t.Fatalf("Usage after the hold expired = %+v, %v", u, err)
	}
	if err := b.Release(ctx, r2.ID); err != nil { // expired: nothing to do
		t.Fatal(err)
	}
	// r1 was committed 2 minutes ago: its retention (1 minute) is over, so
	// its record and idempotency field are gone; r2 expired just now and
	// is remembered (expired) for its retention.
	f := fields()
	if _, ok := f["r:"+n1]; ok || f["i:k1"] != "" || !strings.HasPrefix(f["r:"+n2], `["4",`) {
		t.Fatalf("fields 2 minutes in: %q", f)
	}
	if r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Group: org.ID, Amount: 1, IdempotencyKey: "k1", TTL: time.Minute}); err != nil || r.Replayed || r.ID == r1.ID {
		t.Fatalf("Reserve with a forgotten idempotency key = %+v, %v; want a new reservation", r, err)
	} else if err := b.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	// Retention has passed for r2 too.
	srv.SetTime(start.Add(5 * time.Minute))
	if u, err := b.Usage(ctx, org.ID, org); err != nil || u.Spent != 40 {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	f = fields()
	for k := range f {
		if strings.HasPrefix(k, "r:") || strings.HasPrefix(k, "i:") {
			t.Errorf("field %s kept after retention", k)
		}
	}
	if _, err := b.Commit(ctx, r2.ID, 40); !errors.Is(err, budget.ErrUnknownReservation) {
		t.Errorf("Commit of a forgotten reservation = %v", err)
	}
	// Three days later the daily scope's field is gone, the lifetime
	// scope's spend stays, and the set holds nothing more.
	srv.SetTime(start.Add(72 * time.Hour))
	if u, err := b.Usage(ctx, org.ID, org); err != nil || u.Spent != 40 {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	f = fields()
	if _, ok := f["c:d:"+day.ID]; ok || f["c:t:"+org.ID] == "" || len(f) != 2 {
		t.Errorf("fields after three days: %q", f)
	}
	if n, err := c.ZCard(ctx, bredis.DefaultPrefix+"{"+org.ID+"}:z").Result(); err != nil || n != 0 {
		t.Errorf("set has %d members, %v", n, err)
	}
}
