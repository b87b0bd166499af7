package budget_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"

	"github.com/talosgo/talos/budget"
)

func benchLimiter(b *testing.B) *budget.Limiter {
	l, err := budget.NewLimiter(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: "llm", Limit: budget.PerSecond(1_000_000)})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

var benchKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = "agent:" + strconv.Itoa(i)
	}
	return k
}()

// BenchmarkLimiter compares the in-memory GCRA limiter with
// golang.org/x/time/rate at the same rate (10^6/s, burst 10^6), on one key
// and in parallel on one key and on 1024 keys (x/time/rate: one Limiter
// per key in a sync.Map, the usual way to key it).
func BenchmarkLimiter(b *testing.B) {
	ctx := context.Background()
	b.Run("single/ours", func(b *testing.B) {
		l := benchLimiter(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, "agent:1", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single/x_time_rate", func(b *testing.B) {
		l := rate.NewLimiter(1_000_000, 1_000_000)
		b.ReportAllocs()
		for b.Loop() {
			l.Allow()
		}
	})
	b.Run("parallel_one_key/ours", func(b *testing.B) {
		l := benchLimiter(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Allow(ctx, "agent:1", 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parallel_one_key/x_time_rate", func(b *testing.B) {
		l := rate.NewLimiter(1_000_000, 1_000_000)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow()
			}
		})
	})
	b.Run("parallel_1024_keys/ours", func(b *testing.B) {
		l := benchLimiter(b)
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(97))
			for pb.Next() {
				i++
				if _, err := l.Allow(ctx, benchKeys[i&1023], 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parallel_1024_keys/x_time_rate", func(b *testing.B) {
		var m sync.Map
		for _, k := range benchKeys {
			m.Store(k, rate.NewLimiter(1_000_000, 1_000_000))
		}
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(97))
			for pb.Next() {
				i++
				v, _ := m.Load(benchKeys[i&1023])
				v.(*rate.Limiter).Allow()
			}
		})
	})
}

// BenchmarkMemoryBudget measures a three-scope Reserve + Commit in memory.
func BenchmarkMemoryBudget(b *testing.B) {
	m, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := budget.ReserveRequest{Scopes: []budget.Scope{
		{ID: "agent:1", Limit: budget.MaxAmount, Period: budget.Daily()},
		{ID: "team:1", Limit: budget.MaxAmount, Period: budget.Monthly()},
		{ID: "org:1", Limit: budget.MaxAmount, Period: budget.Lifetime()},
	}, Amount: 1000}
	b.ReportAllocs()
	for b.Loop() {
		r, err := m.Reserve(ctx, req)
		if err != nil || !r.Allowed {
			b.Fatal(r, err)
		}
		if _, err := m.Commit(ctx, r.ID, 500); err != nil {
			b.Fatal(err)
		}
	}
}
