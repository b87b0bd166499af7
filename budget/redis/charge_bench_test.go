package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

// minimalScript is the peer of a 3-scope decision: a bare check-and-
// increment over 3 keys (no periods, holds, idempotency or records).
var minimalScript = goredis.NewScript(`
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local amt, lim = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, 3 do
  if (tonumber(v[i]) or 0) + amt > lim then return 0 end
end
for i = 1, 3 do redis.call('INCRBY', KEYS[i], amt) end
return 1
`)

// cmdStats returns INFO commandstats as command → (calls, usec).
func cmdStats(b *testing.B, c goredis.UniversalClient) map[string][2]int64 {
	b.Helper()
	s, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string][2]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var calls, usec int64
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "calls":
				calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = [2]int64{calls, usec}
	}
	return out
}

// reportServer reports, from INFO commandstats deltas, the server time per
// script call (µs-server/op: EVALSHA's usec, which includes the commands
// the script runs), the Redis commands each script ran (cmds/call) and
// the script calls per operation (calls/op). Other
// clients of the same server during the run would be counted too: run it
// on a server nobody else uses.
func reportServer(b *testing.B, c goredis.UniversalClient, before map[string][2]int64) {
	after := cmdStats(b, c)
	var evals, usec, cmds int64
	for name, a := range after {
		d := [2]int64{a[0] - before[name][0], a[1] - before[name][1]}
		switch name {
		case "evalsha", "eval":
			evals += d[0]
			usec += d[1]
		case "info", "script|load", "script|exists":
		default:
			cmds += d[0]
		}
	}
	if evals > 0 {
		b.ReportMetric(float64(usec)/float64(evals), "µs-server/call")
		b.ReportMetric(float64(cmds)/float64(evals), "cmds/call")
	}
	if b.N > 0 {
		b.ReportMetric(float64(evals)/float64(b.N), "calls/op")
	}
}

// BenchmarkRedisDecision compares the 3-scope budget decisions with the
// minimal check-and-increment script over 3 keys, on one client in one
// run: reserve, reserve + commit (two round trips), and Charge (one). Each
// reports the server time per script call and the commands per call from
// INFO commandstats. The ratio sub-benchmark interleaves all four in one
// loop and reports each one's wall time over the minimal script's
// (x-minimal metrics).
func BenchmarkRedisDecision(b *testing.B) {
	c, real := testenv.Redis(b)
	if !real {
		b.Skip("TALOS_TEST_REDIS_URL unset: INFO commandstats needs a real Redis")
	}
	uc := c
	ctx := context.Background()
	prefix := testenv.Unique(b) + ":"
	bud, err := bredis.New(c, bredis.Config{Prefix: prefix, Retention: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		iter := uc.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			uc.Del(context.Background(), iter.Val())
		}
	})
	org := budgettest.Name("org")
	scopes := []budget.Scope{
		{ID: "agent:1", Limit: budget.MaxAmount, Period: budget.Daily()},
		{ID: "team:1", Limit: budget.MaxAmount, Period: budget.Monthly()},
		{ID: org, Limit: budget.MaxAmount, Period: budget.Lifetime()},
	}
	req := budget.ReserveRequest{Scopes: scopes, Amount: 1, TTL: time.Minute}
	mkeys := []string{prefix + "min:{m}:a", prefix + "min:{m}:b", prefix + "min:{m}:c"}
	minimal := func(b *testing.B) {
		if v, err := minimalScript.Run(ctx, c, mkeys, 1, budget.MaxAmount).Int(); err != nil || v != 1 {
			b.Fatal(v, err)
		}
	}
	reserve := func(b *testing.B) string {
		r, err := bud.Reserve(ctx, req)
		if err != nil || !r.Allowed {
			b.Fatal(r, err)
		}
		return r.ID
	}
	commit := func(b *testing.B, id string) {
		if _, err := bud.Commit(ctx, id, 1); err != nil {
			b.Fatal(err)
		}
	}
	charge := func(b *testing.B) {
		if r, err := bud.Charge(ctx, req); err != nil || !r.Allowed {
			b.Fatal(r, err)
		}
	}
	minimal(b)
	commit(b, reserve(b))
	charge(b)

	b.Run("minimal_3_keys", func(b *testing.B) {
		b.ReportAllocs()
		before := cmdStats(b, uc)
		for b.Loop() {
			minimal(b)
		}
		reportServer(b, uc, before)
	})
	b.Run("reserve_3_scopes", func(b *testing.B) {
		b.ReportAllocs()
		before := cmdStats(b, uc)
		var ids []string
		for b.Loop() {
			ids = append(ids, reserve(b))
		}
		b.StopTimer()
		reportServer(b, uc, before)
		for _, id := range ids {
			if err := bud.Release(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve_commit_3_scopes", func(b *testing.B) {
		b.ReportAllocs()
		before := cmdStats(b, uc)
		for b.Loop() {
			commit(b, reserve(b))
		}
		reportServer(b, uc, before)
	})
	b.Run("charge_3_scopes", func(b *testing.B) {
		b.ReportAllocs()
		before := cmdStats(b, uc)
		for b.Loop() {
			charge(b)
		}
		reportServer(b, uc, before)
	})
	b.Run("ratio", func(b *testing.B) {
		var tm, tr, trc, tc time.Duration
		var ids []string
		for b.Loop() {
			t0 := time.Now()
			minimal(b)
			t1 := time.Now()
			ids = append(ids, reserve(b))
			t2 := time.Now()
			commit(b, reserve(b))
			t3 := time.Now()
			charge(b)
			t4 := time.Now()
			tm, tr, trc, tc = tm+t1.Sub(t0), tr+t2.Sub(t1), trc+t3.Sub(t2), tc+t4.Sub(t3)
		}
		b.StopTimer()
		b.ReportMetric(float64(tr)/float64(tm), "reserve-x-minimal")
		b.ReportMetric(float64(trc)/float64(tm), "reserve+commit-x-minimal")
		b.ReportMetric(float64(tc)/float64(tm), "charge-x-minimal")
		for _, id := range ids {
			if err := bud.Release(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
