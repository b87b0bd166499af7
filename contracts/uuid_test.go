package contracts

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIsUUIDv7(t *testing.T) {
	for _, c := range []struct {
		s          string
		strict, fo bool
	}{
		{"0190a5e0-7c3a-7000-8000-000000000001", true, true},
		{"0190a5e0-7c3a-7fff-bfff-ffffffffffff", true, true},
		{"00000000-0000-7000-a000-000000000000", true, true},
		{"0190A5E0-7C3A-7000-B000-00000000000F", false, true},
		{"0190a5e0-7c3a-7000-B000-000000000001", false, true},
		{"0190a5e0-7c3a-7000-8000-00000000000", false, false},     // 35 chars
		{"0190a5e0-7c3a-7000-8000-0000000000011", false, false},   // 37 chars
		{"0190a5e0-7c3a-7000-8000_000000000001", false, false},    // wrong separator
		{"0190a5e07c3a-7000-8000-0000000000001-", false, false},   // hyphens moved
		{"0190a5e0-7c3a-7000-8000-00000000000g", false, false},    // not hex
		{"0190a5e0-7c3a-8000-8000-000000000001", false, false},    // version 8
		{"0190a5e0-7c3a-7000-d000-000000000001", false, false},    // variant 110
		{"0190a5e0-7c3a-7000-8000-00000000000\x00", false, false}, // NUL
		{"0190a5e0-7c3a-7000-8000-0000000000é", false, false},     // multi-byte
		{"{0190a5e0-7c3a-7000-8000-0000000001}", false, false},
	} {
		if got := IsUUIDv7(c.s); got != c.strict {
			t.Errorf("IsUUIDv7(%q) = %v, want %v", c.s, got, c.strict)
		}
		if got := IsUUIDv7Fold(c.s); got != c.fo {
			t.Errorf("IsUUIDv7Fold(%q) = %v, want %v", c.s, got, c.fo)
		}
	}
}

func TestNewUUIDv7(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := NewUUIDv7()
	after := time.Now()
	if !IsUUIDv7(id) {
		t.Fatalf("NewUUIDv7() = %q, not a lowercase UUIDv7", id)
	}
	ts, err := UUIDv7Time(id)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Before(before) || ts.After(after) {
		t.Errorf("timestamp %v not within [%v, %v]", ts, before, after)
	}
	if ts.Location() != time.UTC {
		t.Errorf("UUIDv7Time location %v, want UTC", ts.Location())
	}
}

func TestUUIDv7TimeVector(t *testing.T) {
	// The first 48 bits are the Unix time in milliseconds.
	ts, err := UUIDv7Time("0190a5e0-7c3a-7000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.UnixMilli(); got != 0x0190a5e07c3a {
		t.Errorf("UnixMilli = %d, want %d", got, int64(0x0190a5e07c3a))
	}
	if _, err := UUIDv7Time("0190A5E0-7C3A-7000-8000-000000000001"); CodeOf(err) != CodeInvalidInput {
		t.Errorf("uppercase: err %v, want %s", err, CodeInvalidInput)
	}
}

func TestNewUUIDv7At(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	a, b := NewUUIDv7At(at), NewUUIDv7At(at)
	if !IsUUIDv7(a) || !IsUUIDv7(b) {
		t.Fatalf("NewUUIDv7At = %q, %q", a, b)
	}
	if a == b {
		t.Errorf("two identifiers for one time are equal: %q", a)
	}
	for _, id := range []string{a, b} {
		ts, _ := UUIDv7Time(id)
		if !ts.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("UUIDv7Time(%q) = %v, want %v", id, ts, at.Truncate(time.Millisecond))
		}
	}
	if id := NewUUIDv7At(time.Unix(-5, 0)); !strings.HasPrefix(id, "00000000-0000-7") {
		t.Errorf("pre-epoch time not clamped to 0: %q", id)
	}
	if id := NewUUIDv7At(time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)); !strings.HasPrefix(id, "ffffffff-ffff-7") {
		t.Errorf("far-future time not clamped to 2^48-1: %q", id)
	}
}

// TestUUIDv7Monotonic generates many identifiers within one frozen
// millisecond, and after the clock steps backwards: every one must be greater
// than the previous.
func TestUUIDv7Monotonic(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	g := NewUUIDv7Generator(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	prev := ""
	for i := 0; i < 5000; i++ {
		if i == 2500 {
			mu.Lock()
			now = now.Add(-time.Hour) // clock steps back
			mu.Unlock()
		}
		id := g.New()
		if !IsUUIDv7(id) {
			t.Fatalf("id %d = %q, not a UUIDv7", i, id)
		}
		if id <= prev {
			t.Fatalf("id %d = %q is not greater than %q", i, id, prev)
		}
		prev = id
	}
	ts, _ := UUIDv7Time(prev)
	if ts.UnixMilli() != 1_700_000_000_000 {
		t.Errorf("timestamp moved to %d while the clock was frozen or behind", ts.UnixMilli())
	}
	mu.Lock()
	now = time.UnixMilli(1_700_000_000_001)
	mu.Unlock()
	if id := g.New(); id <= prev {
		t.Errorf("next millisecond %q is not greater than %q", id, prev)
	}
}

// TestUUIDv7CounterOverflow drives the 74-bit counter to its end: the
// generator moves to the next millisecond and stays increasing.
func TestUUIDv7CounterOverflow(t *testing.T) {
	g := NewUUIDv7Generator(func() time.Time { return time.UnixMilli(42) })
	first := g.New()
	g.mu.Lock()
	g.randA, g.randB = randAMask, randBMask-1
	g.mu.Unlock()
	last := formatUUIDv7(42, randAMask, randBMask-1)
	next := g.New()
	if next <= last || next <= first {
		t.Fatalf("after overflow %q is not greater than %q", next, last)
	}
	ts, _ := UUIDv7Time(next)
	if ts.UnixMilli() != 43 {
		t.Errorf("after overflow timestamp = %d ms, want 43", ts.UnixMilli())
	}
}

func TestUUIDv7Concurrent(t *testing.T) {
	g := NewUUIDv7Generator(nil)
	const workers, each = 8, 500
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				ids[w] = append(ids[w], g.New())
			}
		}()
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, list := range ids {
		for i, id := range list {
			if seen[id] {
				t.Fatalf("duplicate id %q", id)
			}
			seen[id] = true
			// Each goroutine sees its own identifiers increase.
			if i > 0 && id <= list[i-1] {
				t.Fatalf("%q is not greater than %q from the same goroutine", id, list[i-1])
			}
		}
	}
}
