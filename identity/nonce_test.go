package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestNonceStore(max int) (*MemNonceStore, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	s := NewMemNonceStore(max)
	s.now = clk.Now
	return s, clk
}

func TestMemoryNonceStoreClaim(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestNonceStore(10)
	first, err := s.Claim(ctx, "a", time.Minute)
	if err != nil || !first {
		t.Fatalf("first claim: %v %v", first, err)
	}
	first, err = s.Claim(ctx, "a", time.Minute)
	if err != nil || first {
		t.Fatalf("second claim: %v %v", first, err)
	}
	clk.Advance(59 * time.Second)
	if first, _ := s.Claim(ctx, "a", time.Minute); first {
		t.Fatal("claim accepted before expiry")
	}
	clk.Advance(time.Second)
	if first, err := s.Claim(ctx, "a", time.Minute); !first || err != nil {
		t.Fatalf("claim after expiry: %v %v", first, err)
	}
	if first, _ := s.Claim(ctx, "a", time.Minute); first {
		t.Fatal("re-claimed key accepted twice")
	}
}

func TestMemoryNonceStoreFullDenies(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestNonceStore(3)
	for i := range 3 {
		if first, err := s.Claim(ctx, fmt.Sprint(i), time.Duration(i+1)*time.Minute); !first || err != nil {
			t.Fatalf("claim %d: %v %v", i, first, err)
		}
	}
	first, err := s.Claim(ctx, "x", time.Minute)
	if first || !errors.Is(err, ErrNonceStoreFull) || !errors.Is(err, contracts.ErrRateLimited) {
		t.Fatalf("full store: %v %v, want ErrNonceStoreFull", first, err)
	}
	// Live keys were not forgotten.
	for i := range 3 {
		if first, err := s.Claim(ctx, fmt.Sprint(i), time.Minute); first || err != nil {
			t.Fatalf("key %d forgotten: %v %v", i, first, err)
		}
	}
	// Once the first key expires there is room again, and only it is gone.
	clk.Advance(time.Minute)
	if first, err := s.Claim(ctx, "x", time.Minute); !first || err != nil {
		t.Fatalf("claim after expiry of one key: %v %v", first, err)
	}
	if first, _ := s.Claim(ctx, "1", time.Minute); first {
		t.Fatal("unexpired key 1 was evicted")
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
}

func TestMemoryNonceStoreHeapBounded(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestNonceStore(4)
	for range 100 {
		for k := range 4 {
			if first, err := s.Claim(ctx, fmt.Sprint(k), time.Second); !first || err != nil {
				t.Fatalf("claim: %v %v", first, err)
			}
		}
		clk.Advance(time.Second)
	}
	if n := len(s.order); n > 2*s.max+1 {
		t.Fatalf("heap grew to %d entries for max %d", n, s.max)
	}
}

func TestMemoryNonceStoreErrors(t *testing.T) {
	s, _ := newTestNonceStore(0)
	if s.max != DefaultMaxNonces {
		t.Fatalf("max %d", s.max)
	}
	if _, err := s.Claim(context.Background(), "a", 0); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("ttl 0: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if first, err := s.Claim(ctx, "a", time.Minute); first || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v %v", first, err)
	}
	if s.Len() != 0 {
		t.Fatal("failed claims stored a key")
	}
}

func TestMemoryNonceStoreConcurrent(t *testing.T) {
	s := NewMemNonceStore(1000)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if first, err := s.Claim(context.Background(), "same", time.Minute); err == nil && first {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claims won, want 1", wins.Load())
	}
}

// ClaimFor: the per-principal cap and token bucket deny only the principal
// over them; replays are answered before either is charged; expiry frees
// the quota.
func TestMemoryNonceStorePrincipalQuota(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	s, err := NewMemNonceStoreConfig(MemNonceStoreConfig{Max: 100, MaxPerPrincipal: 3, Rate: 1, Burst: 5, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, err := s.ClaimFor(ctx, "a", fmt.Sprint("a", i), time.Minute); !ok || err != nil {
			t.Fatalf("claim %d: %v %v", i, ok, err)
		}
	}
	if _, err := s.ClaimFor(ctx, "a", "a3", time.Minute); !errors.Is(err, ErrNonceRateLimited) {
		t.Fatalf("a over its cap: %v, want ErrNonceRateLimited", err)
	}
	// A replay of a's nonce is a replay, not a charge.
	for range 10 {
		if ok, err := s.ClaimFor(ctx, "a", "a0", time.Minute); ok || err != nil {
			t.Fatalf("replay: %v %v", ok, err)
		}
	}
	if ok, err := s.ClaimFor(ctx, "b", "b0", time.Minute); !ok || err != nil {
		t.Fatalf("b denied because of a: %v %v", ok, err)
	}
	// After expiry a's keys are forgotten and it may claim again, up to its
	// bucket (5, minus the 3 it spent, plus 61 s × 1/s, capped at 5).
	clk.Advance(61 * time.Second)
	for i := range 3 {
		if ok, err := s.ClaimFor(ctx, "a", fmt.Sprint("a", 10+i), time.Second); !ok || err != nil {
			t.Fatalf("claim after expiry %d: %v %v", i, ok, err)
		}
	}
	if n := s.Len(); n != 3 {
		t.Fatalf("Len %d after expiry, want 3 (b's key expired too)", n)
	}
	// Rate: the bucket holds 5; 3 spent; refill 1/s.
	clk.Advance(2 * time.Second) // the three 1 s keys expire; bucket 2+2=4
	for i := range 4 {
		if ok, err := s.ClaimFor(ctx, "a", fmt.Sprint("r", i), time.Millisecond); !ok || err != nil {
			t.Fatalf("burst claim %d: %v %v", i, ok, err)
		}
		clk.Advance(time.Millisecond) // each key expires before the next claim
	}
	if _, err := s.ClaimFor(ctx, "a", "r4", time.Millisecond); !errors.Is(err, ErrNonceRateLimited) {
		t.Fatalf("a over its rate: %v, want ErrNonceRateLimited", err)
	}
	if ok, err := s.ClaimFor(ctx, "b", "b1", time.Millisecond); !ok || err != nil {
		t.Fatalf("b denied because of a's rate: %v %v", ok, err)
	}
	clk.Advance(time.Second)
	if ok, err := s.ClaimFor(ctx, "a", "r5", time.Millisecond); !ok || err != nil {
		t.Fatalf("a after refill: %v %v", ok, err)
	}
	// Unscoped claims are limited only by Max.
	for i := range 10 {
		if ok, err := s.Claim(ctx, fmt.Sprint("u", i), time.Minute); !ok || err != nil {
			t.Fatalf("unscoped claim %d: %v %v", i, ok, err)
		}
	}
	for _, bad := range []MemNonceStoreConfig{{Max: -1}, {MaxPerPrincipal: -1}, {Rate: -1}, {Burst: -1}, {Max: 10, MaxPerPrincipal: 11}} {
		if _, err := NewMemNonceStoreConfig(bad); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("config %+v: %v, want TALOS_INVALID_INPUT", bad, err)
		}
	}
}

// With the defaults of NewMemNonceStore, one principal flooding the
// store cannot fill it: it is stopped at 1/16 of the capacity and another
// principal's claim still succeeds.
func TestMemoryNonceStoreDefaultFloodIsolated(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestNonceStore(1 << 14)
	limited := 0
	for i := range 1 << 14 {
		if _, err := s.ClaimFor(ctx, "flooder", fmt.Sprint(i), time.Minute); errors.Is(err, ErrNonceRateLimited) {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if want := 1<<14 - 1<<10; limited != want || s.Len() != 1<<10 {
		t.Fatalf("flooder limited %d times, store holds %d; want %d and %d", limited, s.Len(), want, 1<<10)
	}
	if ok, err := s.ClaimFor(ctx, "victim", "v", time.Minute); !ok || err != nil {
		t.Fatalf("victim: %v %v", ok, err)
	}
}
