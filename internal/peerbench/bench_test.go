package peerbench

import (
	"context"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/go-redis/redis_rate/v10"
	"github.com/transparency-dev/tessera"
	"golang.org/x/time/rate"

	"github.com/talosgo/talos/budget"
	bredis "github.com/talosgo/talos/budget/redis"
)

// interleave runs ours and peer alternately b.N times and reports
// ours/peer wall time as the x-<name> metric and each side's ns/op.
func interleave(b *testing.B, name string, ours, peer func()) { interleaveN(b, name, 1, ours, peer) }

// interleaveN is interleave with n calls per side between clock reads,
// for operations that cost about as much as reading the clock. An op is
// then n calls of each; ours-ns/op and <name>-ns/op are per call.
func interleaveN(b *testing.B, name string, n int, ours, peer func()) {
	var to, tp time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		for range n {
			ours()
		}
		t1 := time.Now()
		for range n {
			peer()
		}
		tp += time.Since(t1)
		to += t1.Sub(t0)
	}
	if b.N > 0 {
		b.ReportMetric(float64(to)/float64(tp), "x-"+name)
		b.ReportMetric(float64(to.Nanoseconds())/float64(b.N*n), "ours-ns/op")
		b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N*n), name+"-ns/op")
	}
}

// BenchmarkPolicy: an allowed decision on a verified (cached) capability
// chain, against cedar-go and OPA deciding the same request.
func BenchmarkPolicy(b *testing.B) {
	ctx := context.Background()
	p := newTalosPolicy(b)
	ps, creq, _ := newCedar(b)
	pq := newOPA(b)
	entities := cedar.EntityMap{}
	ours := func() {
		if !p.allow(ctx, p.req) {
			b.Fatal("talos denied")
		}
	}
	ours()
	b.Run("cedar", func(b *testing.B) {
		interleave(b, "cedar", ours, func() {
			if d, _ := cedar.Authorize(ps, entities, creq); !d {
				b.Fatal("cedar denied")
			}
		})
	})
	b.Run("opa", func(b *testing.B) {
		interleave(b, "opa", ours, func() {
			if !opaAllow(ctx, pq, opaAllowInput) {
				b.Fatal("opa denied")
			}
		})
	})
}

// BenchmarkTokenVerify: decoding and verifying a presented token (Ed25519
// signature, expiry, scope) against decoding and verifying a macaroon
// with three first-party caveats (HMAC-SHA256 chain).
func BenchmarkTokenVerify(b *testing.B) {
	p := newTalosPolicy(b)
	rootKey, wire := newMacaroon(b)
	interleave(b, "macaroon", func() {
		if !talosVerify(p, "read") {
			b.Fatal("talos token refused")
		}
	}, func() {
		if !macaroonVerify(rootKey, wire, "read") {
			b.Fatal("macaroon refused")
		}
	})
}

// BenchmarkLimiter: in-memory rate decisions, ours against
// golang.org/x/time/rate (single key, 10^6/s), 256 per side between clock
// reads.
func BenchmarkLimiter(b *testing.B) {
	ctx := context.Background()
	ours, err := budget.NewLimiter(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: "llm", Limit: budget.PerSecond(1_000_000)})
	if err != nil {
		b.Fatal(err)
	}
	peer := rate.NewLimiter(1_000_000, 1_000_000)
	interleaveN(b, "x_time_rate", 256, func() {
		if _, err := ours.Allow(ctx, "agent:1", 1); err != nil {
			b.Fatal(err)
		}
	}, func() { peer.Allow() })
}

// BenchmarkRedisLimiter: one GCRA decision on Redis (one script call
// each), ours against go-redis/redis_rate on the same client.
func BenchmarkRedisLimiter(b *testing.B) {
	c := redisClient(b)
	ctx := context.Background()
	prefix := uniquePrefix()
	ours, err := bredis.NewRates(c, prefix)
	if err != nil {
		b.Fatal(err)
	}
	peer := redis_rate.NewLimiter(c)
	b.Cleanup(func() { c.Del(context.Background(), "rate:"+prefix+"peer") })
	interleave(b, "redis_rate", func() {
		if _, err := ours.AllowN(ctx, "llm", "k", budget.PerSecond(1_000_000), 1); err != nil {
			b.Fatal(err)
		}
	}, func() {
		if _, err := peer.Allow(ctx, prefix+"peer", redis_rate.PerSecond(1_000_000)); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkDurableAppend: appends that return once the entry is durable
// (fsynced), from 256 goroutines: an audit event through audit.Log on the
// file store (group commit) against the same sealed bytes added to
// tessera's POSIX driver (batches of up to 256 or 10 ms; Add's future
// returns once the entry is sequenced and stored). Each op is one entry
// on each side, ours first; x-tessera is ours/tessera time per entry.
func BenchmarkDurableAppend(b *testing.B) {
	ctx := context.Background()
	l := newTalosLog(b)
	app := newTessera(b)
	ev := event(1)
	sealed, err := ev.Seal()
	if err != nil {
		b.Fatal(err)
	}
	const workers = 256
	var to, tp time.Duration
	for b.Loop() {
		// Whole rounds of 1,024 entries per side keep both batched.
		to += appendAll(b, 1024, workers, func(i int) error { _, err := l.Append(ctx, event(i)); return err })
		tp += appendAll(b, 1024, workers, func(int) error { _, err := app.Add(ctx, tessera.NewEntry(sealed))(); return err })
	}
	if b.N > 0 {
		b.ReportMetric(float64(to)/float64(tp), "x-tessera")
		b.ReportMetric(float64(to.Nanoseconds())/float64(b.N*1024), "ours-ns/entry")
		b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N*1024), "tessera-ns/entry")
	}
}
