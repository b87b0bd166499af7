package redis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

// A rolling scope's value keeps only the buckets still in its window, so
// it stays bounded however long the scope is used.
func TestRollingValueBounded(t *testing.T) {
	c, _ := testenv.Redis(t)
	prefix := testenv.Unique(t) + ":"
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	s := budget.Scope{ID: budgettest.Name("agent"), Limit: budget.MaxAmount, Period: budget.Rolling(time.Second)}
	deadline := time.Now().Add(1300 * time.Millisecond) // > window + a few buckets
	for time.Now().Before(deadline) {
		r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1})
		if err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
		if _, err := b.Commit(t.Context(), r.ID, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	keys, err := c.Keys(t.Context(), prefix+"*:c:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("scope keys %q, %v", keys, err)
	}
	v, err := c.Get(t.Context(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(v)); n > 3+2*budget.RollingBuckets || n%2 == 0 {
		t.Fatalf("rolling value has %d fields: %q", n, v)
	}
}

// A scope value or reservation record that is not what the scripts wrote
// is an error (callers deny), never a decision.
func TestMalformedStateFailsClosed(t *testing.T) {
	c, _ := testenv.Redis(t)
	prefix := testenv.Unique(t) + ":"
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, p := range []budget.Period{budget.Daily(), budget.Rolling(time.Hour), budget.Lifetime()} {
		s := budget.Scope{ID: budgettest.Name("agent"), Limit: 100, Period: p}
		req := budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}
		if r, err := b.Reserve(ctx, req); err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
		keys, err := c.Keys(ctx, prefix+"*:c:*"+s.ID).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("scope keys %q, %v", keys, err)
		}
		for _, bad := range []string{"", "x", "1 2", "1 x 0 0 0", "1 2.5 0 0 0", "1 2 3 4", "1 2 3 4 5 x"} {
			if err := c.Set(ctx, keys[0], bad, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if r, err := b.Reserve(ctx, req); err == nil {
				t.Errorf("%v: Reserve on scope value %q = %+v, want an error", p, bad, r)
			}
		}
	}
	s := budget.Scope{ID: budgettest.Name("team"), Limit: 100, Period: budget.Monthly()}
	r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	group, _, _ := strings.Cut(r.ID, "~")
	recs, err := c.Keys(ctx, prefix+"{"+group+"}:r:*").Result()
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %q, %v", recs, err)
	}
	for _, bad := range []string{"", "[]", `["1"]`, "{", `[1,2,3]`} {
		if err := c.Set(ctx, recs[0], bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Commit(ctx, r.ID, 1); err == nil {
			t.Errorf("Commit on record %q = %+v, want an error", bad, st)
		}
		if err := b.Release(ctx, r.ID); err == nil {
			t.Errorf("Release on record %q succeeded, want an error", bad)
		}
	}
}
