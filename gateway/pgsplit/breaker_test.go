package pgsplit

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestBreaker(threshold, probes int) (*Breaker, *fakeClock, *[]string) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var mu sync.Mutex
	var log []string
	b := NewBreaker(BreakerConfig{
		FailureThreshold: threshold,
		OpenDuration:     10 * time.Second,
		HalfOpenProbes:   probes,
		Now:              clk.Now,
		OnStateChange: func(from, to State) {
			mu.Lock()
			log = append(log, from.String()+"->"+to.String())
			mu.Unlock()
		},
	})
	return b, clk, &log
}

func call(t *testing.T, b *Breaker, o Outcome) {
	t.Helper()
	done, ok := b.Allow()
	if !ok {
		t.Fatalf("Allow refused in state %v", b.State())
	}
	done(o)
}

func TestBreakerOpensAfterThreshold(t *testing.T) {
	b, _, log := newTestBreaker(3, 1)
	call(t, b, Failure)
	call(t, b, Failure)
	call(t, b, Success) // resets the count
	call(t, b, Failure)
	call(t, b, Failure)
	if s := b.State(); s != Closed {
		t.Fatalf("state %v after 2 consecutive failures, want closed", s)
	}
	call(t, b, Failure)
	if s := b.State(); s != Open {
		t.Fatalf("state %v after 3 consecutive failures, want open", s)
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("open breaker admitted a call")
	}
	if len(*log) != 1 || (*log)[0] != "closed->open" {
		t.Fatalf("transitions %v", *log)
	}
}

func TestBreakerHalfOpenRecovers(t *testing.T) {
	b, clk, log := newTestBreaker(1, 2)
	call(t, b, Failure)
	clk.Advance(9 * time.Second)
	if _, ok := b.Allow(); ok {
		t.Fatal("admitted before the open duration passed")
	}
	clk.Advance(time.Second)
	if s := b.State(); s != HalfOpen {
		t.Fatalf("state %v after open duration, want half-open", s)
	}
	d1, ok1 := b.Allow()
	d2, ok2 := b.Allow()
	if !ok1 || !ok2 {
		t.Fatal("half-open breaker refused one of its 2 probes")
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("half-open breaker admitted a third concurrent probe")
	}
	d1(Success)
	if s := b.State(); s != HalfOpen {
		t.Fatalf("state %v after 1 of 2 probes succeeded, want half-open", s)
	}
	d1(Failure) // a second report of the same call is ignored
	if s := b.State(); s != HalfOpen {
		t.Fatalf("duplicate done changed state to %v", s)
	}
	d2(Success)
	if s := b.State(); s != Closed {
		t.Fatalf("state %v after all probes succeeded, want closed", s)
	}
	want := []string{"closed->open", "open->half-open", "half-open->closed"}
	if len(*log) != len(want) {
		t.Fatalf("transitions %v, want %v", *log, want)
	}
	for i := range want {
		if (*log)[i] != want[i] {
			t.Fatalf("transitions %v, want %v", *log, want)
		}
	}
}

func TestBreakerHalfOpenProbeFailureReopens(t *testing.T) {
	b, clk, _ := newTestBreaker(2, 1)
	call(t, b, Failure)
	call(t, b, Failure)
	clk.Advance(10 * time.Second)
	call(t, b, Failure)
	if s := b.State(); s != Open {
		t.Fatalf("state %v after failed probe, want open", s)
	}
	clk.Advance(5 * time.Second)
	if _, ok := b.Allow(); ok {
		t.Fatal("re-opened breaker admitted a call before a full open duration")
	}
	clk.Advance(5 * time.Second)
	call(t, b, Success)
	if s := b.State(); s != Closed {
		t.Fatalf("state %v, want closed", s)
	}
}

func TestBreakerIgnoredReleasesProbe(t *testing.T) {
	b, clk, _ := newTestBreaker(1, 1)
	call(t, b, Failure)
	clk.Advance(10 * time.Second)
	call(t, b, Ignored)
	if s := b.State(); s != HalfOpen {
		t.Fatalf("state %v after an ignored probe, want half-open", s)
	}
	call(t, b, Success)
	if s := b.State(); s != Closed {
		t.Fatalf("state %v, want closed", s)
	}
}

func TestBreakerStaleOutcomeIgnored(t *testing.T) {
	b, _, _ := newTestBreaker(2, 1)
	slow, ok := b.Allow() // admitted while closed
	if !ok {
		t.Fatal("refused")
	}
	call(t, b, Failure)
	call(t, b, Failure) // opens
	slow(Success)       // finished after the trip: must not close it
	if s := b.State(); s != Open {
		t.Fatalf("state %v, want open", s)
	}
}

func TestBreakerDefaults(t *testing.T) {
	b := NewBreaker(BreakerConfig{})
	for range DefaultFailureThreshold - 1 {
		call(t, b, Failure)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("state %v, want closed", s)
	}
	call(t, b, Failure)
	if s := b.State(); s != Open {
		t.Fatalf("state %v, want open", s)
	}
}

func TestBreakerConcurrent(t *testing.T) {
	b, clk, _ := newTestBreaker(5, 3)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				if done, ok := b.Allow(); ok {
					if (i+j)%3 == 0 {
						done(Failure)
					} else {
						done(Success)
					}
				}
				if j%50 == 0 {
					clk.Advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight < 0 || b.inFlight > 3 || b.failures < 0 {
		t.Fatalf("inconsistent breaker: inFlight=%d failures=%d", b.inFlight, b.failures)
	}
}
