package budget_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // TestDailyResetsAtLocalMidnight needs America/New_York everywhere

	"github.com/talosgo/talos/budget"
)

// fakeClock is a settable clock for the in-memory back-ends.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockMemory(t *testing.T, loc *time.Location, start time.Time) (*budget.MemBudget, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: start}
	m, err := budget.NewMemBudget(budget.MemBudgetConfig{Location: loc, Now: clk.Now, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m, clk
}

func spend(t *testing.T, b budget.Budget, s budget.Scope, amount, actual int64) budget.Settlement {
	t.Helper()
	r, err := b.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: amount})
	if err != nil || !r.Allowed {
		t.Fatalf("Reserve(%d) = %+v, %v", amount, r, err)
	}
	st, err := b.Commit(context.Background(), r.ID, actual)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func usage(t *testing.T, b budget.Budget, s budget.Scope) budget.Usage {
	t.Helper()
	u, err := b.Usage(context.Background(), s.ID, s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDailyResetsAtLocalMidnight(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-08 is the spring-forward day in New York: a 23-hour day.
	m, clk := newClockMemory(t, ny, time.Date(2026, 3, 8, 0, 30, 0, 0, ny))
	s := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Daily()}
	spend(t, m, s, 1000, 1000)
	u := usage(t, m, s)
	if want := time.Date(2026, 3, 9, 0, 0, 0, 0, ny); !u.ResetAt.Equal(want) || u.Spent != 1000 {
		t.Fatalf("Usage = %+v, want spent 1000 resetting at %v", u, want)
	}
	if got := u.ResetAt.Sub(time.Date(2026, 3, 8, 0, 0, 0, 0, ny)); got != 23*time.Hour {
		t.Fatalf("the DST day lasts %v, want 23h", got)
	}
	clk.Set(time.Date(2026, 3, 8, 23, 59, 59, 0, ny))
	if r, _ := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); r.Allowed {
		t.Fatal("reservation allowed before local midnight")
	}
	clk.Set(time.Date(2026, 3, 9, 0, 0, 0, 0, ny))
	if u := usage(t, m, s); u.Spent != 0 || u.Remaining != 1000 {
		t.Fatalf("after local midnight: %+v, want a fresh day", u)
	}
	// UTC midnight is not a boundary in New York.
	clk.Set(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC).Add(-time.Minute))
	spend(t, m, s, 500, 500)
	clk.Add(2 * time.Minute)
	if u := usage(t, m, s); u.Spent != 500 {
		t.Fatalf("after UTC midnight: spent %d, want 500 (same local day)", u.Spent)
	}
}

func TestMonthlyAndCarriedReservation(t *testing.T) {
	m, clk := newClockMemory(t, time.UTC, time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC))
	s := budget.Scope{ID: "team:1", Limit: 1000, Period: budget.Monthly()}
	spend(t, m, s, 600, 600)
	r, err := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 400, TTL: time.Hour})
	if err != nil || !r.Allowed {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	clk.Set(time.Date(2026, 2, 1, 0, 1, 0, 0, time.UTC))
	// The held 400 still counts in February until it settles.
	u := usage(t, m, s)
	if u.Spent != 0 || u.Reserved != 400 || !u.ResetAt.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("February usage = %+v", u)
	}
	if d, _ := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 601}); d.Allowed {
		t.Fatal("carried reservation not counted")
	}
	// It settles into February, the period in which the cost is known.
	if _, err := m.Commit(context.Background(), r.ID, 300); err != nil {
		t.Fatal(err)
	}
	if u := usage(t, m, s); u.Spent != 300 || u.Reserved != 0 {
		t.Fatalf("after commit: %+v", u)
	}
}

func TestRollingBuckets(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	m, clk := newClockMemory(t, time.UTC, start)
	s := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Rolling(time.Minute)}
	spend(t, m, s, 400, 400)
	clk.Add(30 * time.Second)
	spend(t, m, s, 600, 600)
	if r, _ := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); r.Allowed {
		t.Fatal("rolling window overspent")
	}
	clk.Add(30 * time.Second) // the first spend leaves the window
	if u := usage(t, m, s); u.Spent != 600 {
		t.Fatalf("after 60s: spent %d, want 600", u.Spent)
	}
	clk.Add(30 * time.Second)
	if u := usage(t, m, s); u.Spent != 0 {
		t.Fatalf("after 90s: spent %d, want 0", u.Spent)
	}
}

func TestTTLAndRetentionWithClock(t *testing.T) {
	m, clk := newClockMemory(t, time.UTC, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Lifetime()}
	r, err := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 700, TTL: time.Minute, IdempotencyKey: "req-1"})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	clk.Add(time.Minute - time.Microsecond)
	if u := usage(t, m, s); u.Reserved != 700 {
		t.Fatalf("before the TTL: reserved %d", u.Reserved)
	}
	clk.Add(time.Microsecond)
	if u := usage(t, m, s); u.Reserved != 0 {
		t.Fatalf("at the TTL: reserved %d, want 0", u.Reserved)
	}
	clk.Add(time.Hour) // past retention (1h after expiry)
	if err := m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Commit(context.Background(), r.ID, 1); !errors.Is(err, budget.ErrUnknownReservation) {
		t.Fatalf("Commit after retention = %v, want ErrUnknownReservation", err)
	}
	// The idempotency key is forgotten with it: a new reservation.
	r2, err := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 700, TTL: time.Minute, IdempotencyKey: "req-1"})
	if err != nil || !r2.Allowed || r2.Replayed || r2.ID == r.ID {
		t.Fatalf("Reserve after retention = %+v, %v; want a new reservation", r2, err)
	}
}

func TestSweepDropsIdleGroups(t *testing.T) {
	m, clk := newClockMemory(t, time.UTC, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Rolling(time.Minute)}
	r, err := m.Reserve(context.Background(), budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 10, TTL: time.Minute})
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	if err := m.Release(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	if err := m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(context.Background(), r.ID); !errors.Is(err, budget.ErrUnknownReservation) {
		t.Fatalf("Release after sweep = %v, want ErrUnknownReservation", err)
	}
}
