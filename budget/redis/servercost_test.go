package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/internal/testenv"
)

var trivialScript = goredis.NewScript(`return 1`)

// BenchmarkScriptServerCost sends each script in pipelines of 100 runs, so
// the round trip is paid once per 100 calls and ns/call is the server's
// cost per decision (argument parsing, the script and its commands) plus
// the client's encoding and decoding. evalsha_trivial is the primitive it
// compares with, in the same run. On a loaded machine this separates the
// scripts' own work from network and scheduling latency, which dominate
// BenchmarkRedis there. -bench Redis does not match it: run it with
// -bench ScriptServerCost and a small -benchtime (an op is 100 calls).
func BenchmarkScriptServerCost(b *testing.B) {
	c, real := testenv.Redis(b)
	if !real {
		b.Log("TALOS_TEST_REDIS_URL unset: measuring miniredis, not Redis")
	}
	ctx := context.Background()
	prefix := testenv.Unique(b) + ":"
	bud, err := New(c, Config{Prefix: prefix, Retention: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		iter := c.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			c.Del(context.Background(), iter.Val())
		}
	})
	req := budget.ReserveRequest{Amount: 1, TTL: time.Minute, Scopes: []budget.Scope{
		{ID: "agent:1", Limit: budget.MaxAmount, Period: budget.Daily()},
		{ID: "team:1", Limit: budget.MaxAmount, Period: budget.Monthly()},
		{ID: "org:1", Limit: budget.MaxAmount, Period: budget.Lifetime()},
	}}
	if err := req.Validate(); err != nil {
		b.Fatal(err)
	}
	group := req.GroupName()
	for _, s := range []*goredis.Script{trivialScript, gcraScript, reserveScript, commitScript} {
		if err := s.Load(ctx, c).Err(); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 100
	// pipe runs one batch of script runs and returns their replies.
	pipe := func(b *testing.B, s *goredis.Script, call func(i int) ([]string, []any)) []any {
		p := c.Pipeline()
		cmds := make([]*goredis.Cmd, batch)
		for i := range batch {
			keys, args := call(i)
			cmds[i] = s.EvalSha(ctx, p, keys, args...)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		out := make([]any, batch)
		for i, cmd := range cmds {
			out[i] = cmd.Val()
		}
		return out
	}
	perCall := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/call")
	}
	// reserveArgs builds run i of a batch; its reservation ID is rids[i].
	rids := make([]string, batch)
	reserveArgs := func(i int) ([]string, []any) {
		c, err := bud.reserveCall(&req, group)
		if err != nil {
			b.Fatal(err)
		}
		rids[i] = c.id
		return c.keys, c.args
	}

	b.Run("evalsha_trivial", func(b *testing.B) {
		for b.Loop() {
			pipe(b, trivialScript, func(int) ([]string, []any) { return []string{prefix + "x"}, nil })
		}
		perCall(b)
	})
	b.Run("allow", func(b *testing.B) {
		lim := budget.PerSecond(1_000_000)
		keys := []string{prefix + "{llm:key:1}:rl"}
		args := []any{lim.Interval().Microseconds(), lim.EffectiveBurst(), 1}
		for b.Loop() {
			for _, v := range pipe(b, gcraScript, func(int) ([]string, []any) { return keys, args }) {
				if _, err := decodeGCRA(v, lim.EffectiveBurst()); err != nil {
					b.Fatal(err)
				}
			}
		}
		perCall(b)
	})
	b.Run("reserve_3_scopes", func(b *testing.B) {
		for b.Loop() {
			for i, v := range pipe(b, reserveScript, reserveArgs) {
				if r, err := decodeReserve(v, group, rids[i], &req, []int{0, 1, 2}); err != nil || !r.Allowed {
					b.Fatal(r, err)
				}
			}
		}
		perCall(b)
	})
	b.Run("commit_3_scopes", func(b *testing.B) {
		ids := make([]string, batch)
		var held time.Duration
		for b.Loop() {
			t0 := time.Now()
			for i, v := range pipe(b, reserveScript, reserveArgs) {
				r, err := decodeReserve(v, group, rids[i], &req, []int{0, 1, 2})
				if err != nil || !r.Allowed {
					b.Fatal(r, err)
				}
				ids[i] = r.ID
			}
			held += time.Since(t0)
			for i, v := range pipe(b, commitScript, func(i int) ([]string, []any) {
				keys, args, err := bud.commitCall(ids[i], 1)
				if err != nil {
					b.Fatal(err)
				}
				return keys, args
			}) {
				if _, err := decodeCommit(v, ids[i], 1); err != nil {
					b.Fatal(err)
				}
			}
		}
		// ns/call counts the commits only: the reserve batches are subtracted.
		b.ReportMetric(float64((b.Elapsed()-held).Nanoseconds())/float64(b.N*batch), "ns/call")
	})
}
