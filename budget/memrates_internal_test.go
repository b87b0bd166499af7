package budget

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryRatesForgetsDecayedKeys(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := NewMemRates(func() time.Time { return now })
	lim := PerSecond(1)
	ctx := context.Background()
	const keys = 200_000
	for i := range keys {
		if i%1000 == 0 {
			now = now.Add(2 * time.Second) // every earlier key has decayed
		}
		if r, err := s.AllowN(ctx, "ns", "k"+strconv.Itoa(i), lim, 1); err != nil || !r.Allowed {
			t.Fatalf("key %d: %+v, %v", i, r, err)
		}
	}
	sp := s.space("ns")
	total := int(sp.n.Load())
	n := 0
	sp.keys.Range(func(any, any) bool { n++; return true })
	if n != total {
		t.Fatalf("%d entries stored, counter says %d", n, total)
	}
	if bound := 4 * 1000; total > bound {
		t.Fatalf("%d entries kept for %d keys of which ≤1000 are live, want ≤ %d", total, keys, bound)
	}
	// The exact limit still holds for a live key after many sweeps.
	if r, _ := s.AllowN(ctx, "ns", "live", lim, 1); !r.Allowed {
		t.Fatal("live key denied")
	}
	if r, _ := s.AllowN(ctx, "ns", "live", lim, 1); r.Allowed {
		t.Fatal("live key allowed twice in a second")
	}
}

// TestMemoryRatesSweepRace runs decisions on a few hot keys while sweeps
// keep removing decayed keys around them: the hot keys' limits must hold
// exactly (no admitted event lost to a sweep), and the race detector
// watches the lock-free paths.
func TestMemoryRatesSweepRace(t *testing.T) {
	var clock atomic.Int64
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := NewMemRates(func() time.Time { return base.Add(time.Duration(clock.Load())) })
	lim := Limit{Rate: 100, Period: time.Hour, Burst: 100} // no refill within the test
	ctx := context.Background()
	var allowed [4]atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				hot := i % 4
				if r, err := s.AllowN(ctx, "ns", "hot"+strconv.Itoa(hot), lim, 1); err != nil {
					t.Error(err)
					return
				} else if r.Allowed {
					allowed[hot].Add(1)
				}
				// Cold keys with a tiny limit decay at once and trigger sweeps.
				if _, err := s.AllowN(ctx, "ns", "cold"+strconv.Itoa(w)+"."+strconv.Itoa(i), PerSecond(1000), 1); err != nil {
					t.Error(err)
					return
				}
				clock.Add(int64(2 * time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for i := range allowed {
		if got := allowed[i].Load(); got != 100 {
			t.Errorf("hot key %d: %d events admitted, limit 100", i, got)
		}
	}
}
