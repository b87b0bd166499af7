package budget

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryRates is the in-memory RateStore. It is safe for concurrent use
// and scales across cores: keys are spread over rateShards shards, each
// with its own mutex. Keys whose state has fully decayed are dropped when
// a shard grows, so memory is bounded by the keys active within one burst
// span. It starts no goroutine.
type MemoryRates struct {
	base   time.Time // monotonic origin; state is nanoseconds since base
	now    func() time.Time
	seed   maphash.Seed
	shards [rateShards]rateShard
}

const (
	rateShards       = 256
	rateSweepMinSize = 1024
)

type rateKey struct{ ns, key string }

type rateShard struct {
	mu      sync.Mutex // guards tat and sweepAt
	tat     map[rateKey]int64
	sweepAt int
	_       [40]byte // keep shards on separate cache lines
}

var _ RateStore = (*MemoryRates)(nil)

// NewMemoryRates returns an empty store. now is its clock; if nil,
// time.Now (monotonic) is used.
func NewMemoryRates(now func() time.Time) *MemoryRates {
	if now == nil {
		now = time.Now
	}
	m := &MemoryRates{base: now(), now: now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].tat = make(map[rateKey]int64)
		m.shards[i].sweepAt = rateSweepMinSize
	}
	return m
}

// AllowN implements RateStore with GCRA in nanoseconds.
func (m *MemoryRates) AllowN(ctx context.Context, ns, key string, lim Limit, n int64) (Result, error) {
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	if err := lim.Validate(); err != nil {
		return Result{}, err
	}
	burst := lim.EffectiveBurst()
	t := int64(lim.Interval())
	if n > burst {
		return Result{RetryAfter: -1}, nil
	}
	now := int64(m.now().Sub(m.base))
	sh := &m.shards[maphash.String(m.seed, key)%rateShards]
	k := rateKey{ns, key}

	sh.mu.Lock()
	tat, ok := sh.tat[k]
	if !ok || tat < now {
		tat = now
	}
	res := gcra(now, tat, t, burst, n)
	if res.Allowed && n > 0 {
		sh.tat[k] = tat + t*n
		if len(sh.tat) >= sh.sweepAt {
			sh.sweepLocked(now)
		}
	}
	sh.mu.Unlock()
	return res, nil
}

// gcra decides n events at now against the theoretical arrival time tat
// (≥ now), emission interval t and burst, all in one integer time unit.
func gcra(now, tat, t, burst, n int64) Result {
	newTat := tat + t*n
	diff := now - (newTat - t*burst)
	if diff < 0 {
		return Result{
			Remaining:  (now - (tat - t*burst)) / t,
			RetryAfter: time.Duration(-diff),
			ResetAfter: time.Duration(tat - now),
		}
	}
	return Result{Allowed: true, Remaining: diff / t, ResetAfter: time.Duration(newTat - now)}
}

func (sh *rateShard) sweepLocked(now int64) {
	for k, tat := range sh.tat {
		if tat <= now {
			delete(sh.tat, k)
		}
	}
	sh.sweepAt = max(rateSweepMinSize, 2*len(sh.tat))
}
