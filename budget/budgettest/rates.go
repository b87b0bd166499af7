package budgettest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// RunRates exercises a RateStore. newStore is called once per subtest.
func RunRates(t *testing.T, newStore func(t *testing.T) budget.RateStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s budget.RateStore)
	}{
		{"Burst", testBurst},
		{"Refill", testRefill},
		{"BiggerThanBurst", testBiggerThanBurst},
		{"Peek", testPeek},
		{"Isolation", testIsolation},
		{"ExactUnderConcurrency", testRateConcurrency},
		{"InvalidLimit", testInvalidLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func allow(t *testing.T, s budget.RateStore, ns, key string, lim budget.Limit, n int64) budget.Result {
	t.Helper()
	r, err := s.AllowN(t.Context(), ns, key, lim, n)
	if err != nil {
		t.Fatalf("AllowN: %v", err)
	}
	return r
}

func testBurst(t *testing.T, s budget.RateStore) {
	ns, key := Name("ns"), Name("key")
	lim := budget.PerMinute(5)
	for i := int64(0); i < 5; i++ {
		r := allow(t, s, ns, key, lim, 1)
		if !r.Allowed || r.Remaining != 4-i || r.RetryAfter != 0 || r.Degraded {
			t.Fatalf("event %d: %+v, want allowed with %d remaining", i, r, 4-i)
		}
		if r.ResetAfter <= time.Duration(i)*12*time.Second || r.ResetAfter > time.Duration(i+1)*12*time.Second {
			t.Fatalf("event %d: ResetAfter %v", i, r.ResetAfter)
		}
	}
	r := allow(t, s, ns, key, lim, 1)
	if r.Allowed || r.Remaining != 0 || r.RetryAfter <= 11*time.Second || r.RetryAfter > 12*time.Second || r.ResetAfter <= 59*time.Second {
		t.Fatalf("event 6: %+v, want denied, retry in about 12s", r)
	}
	if err := r.Err(); !errors.Is(err, contracts.ErrRateLimited) || contracts.HTTPStatus(contracts.CodeOf(err)) != 429 {
		t.Fatalf("Err() = %v, want RATE_LIMITED", err)
	}
	if r := allow(t, s, ns, key, lim, 1); r.Allowed {
		t.Fatal("denied request changed the state")
	}
}

func testRefill(t *testing.T, s budget.RateStore) {
	ns, key := Name("ns"), Name("key")
	lim := budget.Limit{Rate: 10, Period: time.Second, Burst: 1}
	if r := allow(t, s, ns, key, lim, 1); !r.Allowed {
		t.Fatal("first event denied")
	}
	if r := allow(t, s, ns, key, lim, 1); r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 100*time.Millisecond {
		t.Fatalf("second event: %+v, want denied for at most 100ms", r)
	}
	time.Sleep(150 * time.Millisecond)
	if r := allow(t, s, ns, key, lim, 1); !r.Allowed {
		t.Fatalf("event after refill: %+v", r)
	}
}

func testBiggerThanBurst(t *testing.T, s budget.RateStore) {
	r := allow(t, s, Name("ns"), Name("key"), budget.PerMinute(5), 6)
	if r.Allowed || r.RetryAfter >= 0 {
		t.Fatalf("n > burst: %+v, want denied with negative RetryAfter", r)
	}
	if r.Err() == nil || contracts.CodeOf(r.Err()) != contracts.CodeRateLimited {
		t.Fatalf("Err() = %v", r.Err())
	}
}

func testPeek(t *testing.T, s budget.RateStore) {
	ns, key := Name("ns"), Name("key")
	lim := budget.PerHour(3)
	if r := allow(t, s, ns, key, lim, 0); !r.Allowed || r.Remaining != 3 {
		t.Fatalf("peek: %+v", r)
	}
	allow(t, s, ns, key, lim, 2)
	for range 3 {
		if r := allow(t, s, ns, key, lim, 0); !r.Allowed || r.Remaining != 1 {
			t.Fatalf("peek after 2: %+v, want 1 remaining", r)
		}
	}
}

func testIsolation(t *testing.T, s budget.RateStore) {
	ns1, ns2, k1, k2 := Name("ns"), Name("ns"), Name("key"), Name("key")
	lim := budget.PerHour(1)
	for _, p := range [][2]string{{ns1, k1}, {ns1, k2}, {ns2, k1}} {
		if r := allow(t, s, p[0], p[1], lim, 1); !r.Allowed {
			t.Fatalf("%s/%s: first event denied", p[0], p[1])
		}
	}
	if r := allow(t, s, ns1, k1, lim, 1); r.Allowed {
		t.Fatal("second event allowed")
	}
}

func testRateConcurrency(t *testing.T, s budget.RateStore) {
	ns, key := Name("ns"), Name("key")
	lim := budget.PerHour(100)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				r, err := s.AllowN(context.Background(), ns, key, lim, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 100 {
		t.Fatalf("%d of 320 concurrent events allowed, want exactly 100", n)
	}
}

func testInvalidLimit(t *testing.T, s budget.RateStore) {
	for _, lim := range []budget.Limit{{}, {Rate: 1}, {Rate: 2_000_000, Period: time.Second}, {Rate: 1, Period: time.Second, Burst: -1}} {
		if _, err := s.AllowN(t.Context(), Name("ns"), Name("key"), lim, 1); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("limit %+v: %v, want TALOS_INVALID_INPUT", lim, err)
		}
	}
}
