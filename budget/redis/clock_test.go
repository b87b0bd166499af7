package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/contracts"
)

// The server's TIME is the clock: periods roll over and reservations
// expire by it, whatever the client's clock says. miniredis lets the test
// move the server's clock.
func TestServerClockDecides(t *testing.T) {
	srv := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	b, err := bredis.New(c, bredis.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	s := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Daily()}
	reserve := func(amount int64, ttl time.Duration) (budget.Reservation, error) {
		return b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: amount, TTL: ttl})
	}

	srv.SetTime(today.Add(12 * time.Hour))
	r, err := reserve(1000, time.Minute)
	if err != nil || !r.Allowed {
		t.Fatal(r, err)
	}
	if !r.ExpiresAt.Equal(today.Add(12*time.Hour + time.Minute)) {
		t.Fatalf("ExpiresAt %v, want the server's time plus the TTL", r.ExpiresAt)
	}
	if d, _ := reserve(1, time.Minute); d.Allowed {
		t.Fatal("overspent")
	}
	// Two minutes later by the server's clock, the reservation has expired.
	srv.SetTime(today.Add(12*time.Hour + 2*time.Minute))
	if u, err := b.Usage(ctx, s.ID, s); err != nil || u.Reserved != 0 {
		t.Fatalf("Usage after the server's clock passed the TTL = %+v, %v", u, err)
	}
	st, err := b.Commit(ctx, r.ID, 1000)
	if err != nil || !st.Expired || st.Scopes[0].Charged != 1000 {
		t.Fatalf("late Commit = %+v, %v", st, err)
	}
	if d, _ := reserve(1, time.Minute); d.Allowed {
		t.Fatal("overspent after a late commit")
	}
	// The server's next day is a new period.
	srv.SetTime(today.Add(24*time.Hour + time.Second))
	if r, err := reserve(1000, time.Minute); err != nil || !r.Allowed {
		t.Fatalf("Reserve on the server's next day = %+v, %v", r, err)
	}
	// A server clock beyond the boundaries the client sent is an error: deny.
	srv.SetTime(today.Add(80 * time.Hour))
	if r, err := reserve(1, time.Minute); r.Allowed || !errors.Is(err, contracts.ErrTransport) {
		t.Fatalf("Reserve with a skewed server clock = %+v, %v; want denied with an error", r, err)
	}
	if _, err := b.Usage(ctx, s.ID, s); err == nil {
		t.Fatal("Usage with a skewed server clock succeeded")
	}
}

func TestServerClockRates(t *testing.T) {
	srv := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	rates, err := bredis.NewRates(c, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	srv.SetTime(start)
	lim := budget.Limit{Rate: 10, Period: time.Second, Burst: 2}
	for i, want := range []bool{true, true, false} {
		if r, err := rates.AllowN(ctx, "llm", "k", lim, 1); err != nil || r.Allowed != want {
			t.Fatalf("event %d: %+v, %v", i, r, err)
		}
	}
	r, _ := rates.AllowN(ctx, "llm", "k", lim, 1)
	if r.RetryAfter != 100*time.Millisecond || r.ResetAfter != 200*time.Millisecond {
		t.Fatalf("denied: %+v, want retry in exactly 100ms and reset in 200ms", r)
	}
	srv.SetTime(start.Add(100 * time.Millisecond))
	if r, _ := rates.AllowN(ctx, "llm", "k", lim, 1); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("after 100ms of server time: %+v", r)
	}
}
