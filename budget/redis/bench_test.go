package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

var trivialScript = goredis.NewScript(`return 1`)

// BenchmarkRedis compares one budget or rate decision with a bare EVALSHA
// of a trivial script on the same client: the difference is the script's
// own work on the server plus encoding and decoding. Run it against a real
// server (TALOS_TEST_REDIS_URL); on miniredis it measures miniredis.
func BenchmarkRedis(b *testing.B) {
	c, real := testenv.Redis(b)
	if !real {
		b.Log("TALOS_TEST_REDIS_URL unset: measuring miniredis, not Redis")
	}
	ctx := context.Background()
	prefix := testenv.Unique(b) + ":"
	bud, err := bredis.New(c, bredis.Config{Prefix: prefix, Retention: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	rates, err := bredis.NewRates(c, prefix)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		iter := c.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			c.Del(context.Background(), iter.Val())
		}
	})
	org := budgettest.Name("org")
	scopes := []budget.Scope{
		{ID: "agent:1", Limit: budget.MaxAmount, Period: budget.Daily()},
		{ID: "team:1", Limit: budget.MaxAmount, Period: budget.Monthly()},
		{ID: org, Limit: budget.MaxAmount, Period: budget.Lifetime()},
	}
	if err := trivialScript.Run(ctx, c, []string{prefix + "x"}).Err(); err != nil {
		b.Fatal(err)
	}

	b.Run("evalsha_trivial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := trivialScript.Run(ctx, c, []string{prefix + "x"}).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("allow", func(b *testing.B) {
		lim := budget.PerSecond(1_000_000)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rates.AllowN(ctx, "llm", "key:1", lim, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve_3_scopes", func(b *testing.B) {
		req := budget.ReserveRequest{Scopes: scopes, Amount: 1, TTL: time.Minute}
		b.ReportAllocs()
		for b.Loop() {
			if r, err := bud.Reserve(ctx, req); err != nil || !r.Allowed {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("commit_3_scopes", func(b *testing.B) {
		req := budget.ReserveRequest{Scopes: scopes, Amount: 1, TTL: time.Minute}
		ids := make([]string, 0, 1024)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%1024 == 0 {
				b.StopTimer()
				ids = ids[:0]
				for range 1024 {
					r, err := bud.Reserve(ctx, req)
					if err != nil {
						b.Fatal(err)
					}
					ids = append(ids, r.ID)
				}
				b.StartTimer()
			}
			if _, err := bud.Commit(ctx, ids[i%1024], 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve_idempotent_replay", func(b *testing.B) {
		req := budget.ReserveRequest{Scopes: scopes, Amount: 1, IdempotencyKey: "k" + strconv.Itoa(1)}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bud.Reserve(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
