package budget_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// ratioBatch is how many decisions each side makes between clock reads:
// a clock read costs about as much as a decision here.
const ratioBatch = 256

// BenchmarkLimiterRatio interleaves the in-memory limiter and
// golang.org/x/time/rate in one loop, in batches of 256 decisions per side
// between clock reads, and reports ours/theirs as the x-rate metric: a
// ratio that other load on the machine moves much less than two separate
// timings. single: one key; parallel_1024_keys: every goroutine (GOMAXPROCS
// of them) interleaves on its own stride over 1,024 keys (x/time/rate: one
// Limiter per key in a sync.Map).
func BenchmarkLimiterRatio(b *testing.B) {
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		l := benchLimiter(b)
		peer := rate.NewLimiter(1_000_000, 1_000_000)
		var to, tp time.Duration
		b.ReportAllocs()
		for b.Loop() {
			t0 := time.Now()
			for range ratioBatch {
				if _, err := l.Allow(ctx, "agent:1", 1); err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for range ratioBatch {
				peer.Allow()
			}
			tp += time.Since(t1)
			to += t1.Sub(t0)
		}
		b.ReportMetric(float64(to)/float64(tp), "x-rate")
		b.ReportMetric(float64(to.Nanoseconds())/float64(b.N*ratioBatch), "ours-ns/decision")
	})
	b.Run("parallel_1024_keys", func(b *testing.B) {
		l := benchLimiter(b)
		var m sync.Map
		for _, k := range benchKeys {
			m.Store(k, rate.NewLimiter(1_000_000, 1_000_000))
		}
		var to, tp atomic.Int64
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(97))
			var o, p time.Duration
			for pb.Next() {
				t0 := time.Now()
				for j := range ratioBatch {
					if _, err := l.Allow(ctx, benchKeys[(i+j)&1023], 1); err != nil {
						b.Error(err)
						return
					}
				}
				t1 := time.Now()
				for j := range ratioBatch {
					v, _ := m.Load(benchKeys[(i+j)&1023])
					v.(*rate.Limiter).Allow()
				}
				p += time.Since(t1)
				o += t1.Sub(t0)
				i += ratioBatch
			}
			to.Add(int64(o))
			tp.Add(int64(p))
		})
		b.ReportMetric(float64(to.Load())/float64(tp.Load()), "x-rate")
	})
}
