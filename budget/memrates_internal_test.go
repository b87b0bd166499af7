package budget

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestMemoryRatesForgetsDecayedKeys(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := NewMemoryRates(func() time.Time { return now })
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
	total := 0
	for i := range s.shards {
		total += s.shards[i].n
	}
	if bound := rateShards * rateSweepMinSize; total > bound {
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
