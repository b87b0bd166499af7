package redis_test

import (
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
	var group string
	for time.Now().Before(deadline) {
		r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1})
		if err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
		if _, err := b.Commit(t.Context(), r.ID, 1); err != nil {
			t.Fatal(err)
		}
		group, _, _ = strings.Cut(r.ID, "~")
		time.Sleep(5 * time.Millisecond)
	}
	fields := scopeFields(t, c, prefix, group)
	if len(fields) != 1 {
		t.Fatalf("scope fields %q", fields)
	}
	var v string
	for _, v = range fields {
	}
	if n := len(strings.Fields(v)); n > 3+2*budget.RollingBuckets || n%2 == 0 {
		t.Fatalf("rolling value has %d fields: %q", n, v)
	}
}

// scopeFields returns the scope fields (c:…) of a group's hash.
func scopeFields(t *testing.T, c goredis.UniversalClient, prefix, group string) map[string]string {
	t.Helper()
	all, err := c.HGetAll(t.Context(), prefix+"{"+group+"}:h").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for f, v := range all {
		if strings.HasPrefix(f, "c:") {
			out[f] = v
		}
	}
	return out
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
		r, err := b.Reserve(ctx, req)
		if err != nil || !r.Allowed {
			t.Fatal(r, err)
		}
		group, _, _ := strings.Cut(r.ID, "~")
		fields := scopeFields(t, c, prefix, group)
		if len(fields) != 1 {
			t.Fatalf("scope fields %q", fields)
		}
		var f string
		for f = range fields {
		}
		for _, bad := range []string{"", "x", "1 2", "1 x 0 0 0", "1 2.5 0 0 0", "1 2 3 4", "1 2 3 4 5 x"} {
			if err := c.HSet(ctx, prefix+"{"+group+"}:h", f, bad).Err(); err != nil {
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
	group, nonce, _ := strings.Cut(r.ID, "~")
	for _, bad := range []string{"", "[]", `["1"]`, "{", `[1,2,3]`} {
		if err := c.HSet(ctx, prefix+"{"+group+"}:h", "r:"+nonce, bad).Err(); err != nil {
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
