package redis_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

// countHook counts the commands a client sends (a pipeline counts once).
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// Every decision is one command (EVALSHA) once the scripts are cached.
func TestOneRoundTripPerDecision(t *testing.T) {
	c, _ := testenv.Redis(t)
	hook := &countHook{}
	c.AddHook(hook)
	prefix := testenv.Unique(t) + ":"
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	rates, err := bredis.NewRates(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	scopes := []budget.Scope{
		{ID: budgettest.Name("agent"), Limit: 1000, Period: budget.Daily()},
		{ID: budgettest.Name("team"), Limit: 1000, Period: budget.Rolling(time.Hour)},
		{ID: budgettest.Name("org"), Limit: 1000, Period: budget.Monthly()},
	}
	req := budget.ReserveRequest{Scopes: scopes, Amount: 10, IdempotencyKey: "k"}
	lim := budget.PerMinute(10)
	ops := map[string]func() error{
		"Reserve": func() error { _, err := b.Reserve(ctx, req); return err },
		"Commit": func() error {
			r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: 1})
			if err != nil {
				return err
			}
			hook.n.Store(0)
			_, err = b.Commit(ctx, r.ID, 1)
			return err
		},
		"Release": func() error {
			r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: 1})
			if err != nil {
				return err
			}
			hook.n.Store(0)
			return b.Release(ctx, r.ID)
		},
		"Usage": func() error {
			_, err := b.Usage(ctx, scopes[0].ID, scopes[0])
			if errors.Is(err, budget.ErrUnknownGroup) {
				return nil // still one round trip
			}
			return err
		},
		"AllowN": func() error { _, err := rates.AllowN(ctx, "llm", "k", lim, 1); return err },
	}
	for name, op := range ops {
		if err := op(); err != nil { // loads the script
			t.Fatal(err)
		}
		hook.n.Store(0)
		if err := op(); err != nil {
			t.Fatal(err)
		}
		if n := hook.n.Load(); n != 1 {
			t.Errorf("%s sent %d commands, want 1", name, n)
		}
	}
}

// Meta strings are stored inside the reservation record byte for byte:
// quotes, backslashes, slashes, control bytes, non-ASCII. Bytes that are
// not UTF-8 are checked on real Redis only (miniredis's cjson goes through
// Go strings and replaces them).
func TestMetaRoundTrip(t *testing.T) {
	c, real := testenv.Redis(t)
	b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":"})
	if err != nil {
		t.Fatal(err)
	}
	odd := "a\"b\\c/d\x00e\x01\x1f\x7f é ✓ {x}:r:1:2"
	if real {
		odd += "\xff\xfe\x80"
	}
	m := budget.Meta{KeyID: odd, TeamID: "", OrgID: "[1,2]", Surface: "mcp", ModelGroupID: "\n", MCPServerID: strings.Repeat("z", budget.MaxMetaLen)}
	s := budget.Scope{ID: budgettest.Name("agent"), Limit: 100, Period: budget.Daily()}
	r, err := b.Reserve(t.Context(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 5, Meta: m})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	st, err := b.Commit(t.Context(), r.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.Meta != m {
		t.Fatalf("Meta after commit = %+q, want %+q", st.Meta, m)
	}
	if st, err := b.Commit(t.Context(), r.ID, 3); err != nil || !st.Replayed || st.Meta != m {
		t.Fatalf("replayed commit = %+v, %v", st, err)
	}
}
