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

func newTestNonceStore(max int) (*MemoryNonceStore, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	s := NewMemoryNonceStore(max)
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
	s := NewMemoryNonceStore(1000)
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
