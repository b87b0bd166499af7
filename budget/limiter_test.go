package budget_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// failingStore fails every call, optionally by blocking until the context
// is done.
type failingStore struct {
	block bool
	calls atomic.Int64
}

func (f *failingStore) AllowN(ctx context.Context, ns, key string, lim budget.Limit, n int64) (budget.Result, error) {
	f.calls.Add(1)
	if f.block {
		<-ctx.Done()
		return budget.Result{}, ctx.Err()
	}
	return budget.Result{}, errors.New("connection refused")
}

// rejectingStore answers every call with an invalid-input error.
type rejectingStore struct{}

func (rejectingStore) AllowN(context.Context, string, string, budget.Limit, int64) (budget.Result, error) {
	return budget.Result{}, contracts.New(contracts.CodeInvalidInput, "test: rejected")
}

func TestGCRAExactWithClock(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := budget.NewMemRates(clk.Now)
	lim := budget.Limit{Rate: 10, Period: time.Second, Burst: 3} // one per 100ms
	ctx := context.Background()
	for i := range 3 {
		if r, _ := s.AllowN(ctx, "llm", "k", lim, 1); !r.Allowed || r.Remaining != int64(2-i) {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	r, _ := s.AllowN(ctx, "llm", "k", lim, 1)
	if r.Allowed || r.RetryAfter != 100*time.Millisecond || r.ResetAfter != 300*time.Millisecond {
		t.Fatalf("4th event: %+v, want retry in exactly 100ms, reset in 300ms", r)
	}
	clk.Add(99 * time.Millisecond)
	if r, _ := s.AllowN(ctx, "llm", "k", lim, 1); r.Allowed || r.RetryAfter != time.Millisecond {
		t.Fatalf("at 99ms: %+v", r)
	}
	clk.Add(time.Millisecond)
	if r, _ := s.AllowN(ctx, "llm", "k", lim, 1); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("at 100ms: %+v", r)
	}
	clk.Add(time.Hour)
	if r, _ := s.AllowN(ctx, "llm", "k", lim, 3); !r.Allowed || r.Remaining != 0 || r.ResetAfter != 300*time.Millisecond {
		t.Fatalf("full burst after an hour: %+v", r)
	}
}

func TestLimiterFailurePolicy(t *testing.T) {
	ctx := context.Background()
	var events []budget.UsageEvent
	onEvent := func(e budget.UsageEvent) { events = append(events, e) }

	t.Run("DenyByDefault", func(t *testing.T) {
		events = nil
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: &failingStore{}, Surface: "llm", Limit: budget.PerMinute(60), OnEvent: onEvent})
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.Allow(ctx, "agent:1", 1)
		if r.Allowed || !errors.Is(err, contracts.ErrTransport) {
			t.Fatalf("Allow on a failing store = %+v, %v; want denied with TALOS_TRANSPORT_ERROR", r, err)
		}
		var ce *contracts.Error
		if !errors.As(err, &ce) || !ce.Retryable {
			t.Fatalf("error %v is not a retryable contract error", err)
		}
		if len(events) != 1 || events[0].Status != budget.StatusError || events[0].Kind != budget.EventRateLimit || events[0].Meta.Surface != "llm" {
			t.Fatalf("events = %+v", events)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: &failingStore{block: true}, Surface: "llm", Limit: budget.PerMinute(60), Timeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.Allow(ctx, "agent:1", 1)
		if r.Allowed || !errors.Is(err, contracts.ErrTransportTimeout) {
			t.Fatalf("Allow on a hanging store = %+v, %v; want TALOS_TRANSPORT_TIMEOUT", r, err)
		}
	})
	t.Run("Fallback", func(t *testing.T) {
		events = nil
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: &failingStore{}, Surface: "mcp", Limit: budget.PerMinute(2),
			Fallback: budget.NewMemRates(nil), OnEvent: onEvent})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			r, err := l.Allow(ctx, "agent:1", 1)
			if err != nil || !r.Degraded || r.Allowed != (i < 2) {
				t.Fatalf("event %d with fallback: %+v, %v", i, r, err)
			}
		}
		if len(events) != 3 || !events[0].Degraded || events[2].Status != budget.StatusDenied {
			t.Fatalf("events = %+v", events)
		}
	})
	t.Run("FailOpenUnsafe", func(t *testing.T) {
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: &failingStore{}, Surface: "llm", Limit: budget.PerMinute(1), FailOpenUnsafe: true})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if r, err := l.Allow(ctx, "agent:1", 1); err != nil || !r.Allowed || !r.Degraded {
				t.Fatalf("fail-open: %+v, %v", r, err)
			}
		}
	})
	t.Run("InvalidInputIsNotAFailure", func(t *testing.T) {
		bad := budget.RateStore(rejectingStore{})
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: bad, Surface: "llm", Limit: budget.PerMinute(1), FailOpenUnsafe: true, Fallback: budget.NewMemRates(nil)})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := l.Allow(ctx, "agent:1", 1); r.Allowed || !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("store rejecting the input: %+v, %v; want denied, no fail-open", r, err)
		}
	})
	t.Run("FallbackFailsToo", func(t *testing.T) {
		l, err := budget.NewLimiter(budget.LimiterConfig{Store: &failingStore{}, Surface: "llm", Limit: budget.PerMinute(1), Fallback: &failingStore{}})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := l.Allow(ctx, "agent:1", 1); err == nil || r.Allowed {
			t.Fatalf("both stores failing: %+v, %v; want denied", r, err)
		}
	})
}

func TestLimiterConfigAndInput(t *testing.T) {
	store := budget.NewMemRates(nil)
	for _, cfg := range []budget.LimiterConfig{
		{Surface: "llm", Limit: budget.PerMinute(1)},
		{Store: store, Limit: budget.PerMinute(1)},
		{Store: store, Surface: "bad surface", Limit: budget.PerMinute(1)},
		{Store: store, Surface: "llm"},
		{Store: store, Surface: "llm", Limit: budget.Limit{Rate: 1, Period: time.Nanosecond}},
		{Store: store, Surface: "llm", Limit: budget.PerMinute(1), Timeout: -1},
	} {
		if _, err := budget.NewLimiter(cfg); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("NewLimiter(%+v) = %v, want TALOS_INVALID_INPUT", cfg, err)
		}
	}
	l, err := budget.NewLimiter(budget.LimiterConfig{Store: store, Surface: "llm", Limit: budget.PerMinute(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "a b", "{x}", string(make([]byte, budget.MaxIDLen+1))} {
		if r, err := l.Allow(context.Background(), key, 1); !errors.Is(err, contracts.ErrInvalidInput) || r.Allowed {
			t.Errorf("Allow(%q) = %+v, %v", key, r, err)
		}
	}
	if _, err := l.Allow(context.Background(), "k", -1); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Errorf("Allow(n=-1) = %v", err)
	}
}

func TestLimitsPerSurface(t *testing.T) {
	ls, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil)},
		map[string]budget.Limit{"llm": budget.PerMinute(2), "mcp": budget.PerMinute(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		if r, err := ls.Allow(ctx, "llm", "key:1", 1); err != nil || r.Allowed != want {
			t.Fatalf("llm event %d: %+v, %v", i, r, err)
		}
	}
	// The same key on another surface has its own state and limit.
	if r, _ := ls.Allow(ctx, "mcp", "key:1", 1); !r.Allowed {
		t.Fatal("mcp denied")
	}
	if r, _ := ls.Allow(ctx, "mcp", "key:1", 1); r.Allowed {
		t.Fatal("mcp allowed twice")
	}
	if r, err := ls.Allow(ctx, "a2a", "key:1", 1); !errors.Is(err, contracts.ErrInvalidInput) || r.Allowed {
		t.Fatalf("unknown surface: %+v, %v; want denied with an error", r, err)
	}
	if ls.Limiter("llm").Limit() != budget.PerMinute(2) || ls.Limiter("nope") != nil {
		t.Fatal("Limiter lookup")
	}
}

func TestLimiterAllowDoesNotAllocate(t *testing.T) {
	l, err := budget.NewLimiter(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: "llm", Limit: budget.PerSecond(1000)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Allow(ctx, "agent:1", 1); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := l.Allow(ctx, "agent:1", 1); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Allow on a known key allocates %.1f times per call, want 0", n)
	}
}
