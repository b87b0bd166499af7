package pgsplit

import (
	"sync"
	"testing"
)

// BenchmarkBreakerAllow measures the breaker's cost per call on the closed
// path against a bare mutex lock/unlock pair, in the same run.
func BenchmarkBreakerAllow(b *testing.B) {
	br := NewBreaker(BreakerConfig{})
	b.Run("breaker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			done, _ := br.Allow()
			done(Success)
		}
	})
	var mu sync.Mutex
	var n int
	b.Run("mutex_lock_unlock_x2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mu.Lock()
			n++ // the baseline: two minimal critical sections
			mu.Unlock()
			mu.Lock()
			n++
			mu.Unlock()
		}
	})
}
