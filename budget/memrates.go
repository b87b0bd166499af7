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
	rateSweepMinSize = 64
)

// rateEntry is one key's GCRA state. Entries whose keys hash alike form
// a chain, so a lookup hashes the key once.
type rateEntry struct {
	ns, key string
	tat     int64 // theoretical arrival time, ns since base
	next    *rateEntry
}

type rateShard struct {
	mu      sync.Mutex // guards m, n and sweepAt
	m       map[uint64]*rateEntry
	n       int // entries, including chained ones
	sweepAt int
	_       [32]byte // keep shards on separate cache lines
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
		m.shards[i].m = make(map[uint64]*rateEntry)
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
	if n < 0 {
		return Result{}, invalid("negative event count")
	}
	return m.allow(ns, key, int64(lim.Interval()), lim.EffectiveBurst(), n), nil
}

// allow is AllowN for a validated limit: interval t in nanoseconds, burst,
// and n ≥ 0.
func (m *MemoryRates) allow(ns, key string, t, burst, n int64) Result {
	if n > burst {
		return Result{RetryAfter: -1}
	}
	h := maphash.String(m.seed, key)
	sh := &m.shards[h%rateShards]
	now := int64(m.now().Sub(m.base))

	sh.mu.Lock()
	e := sh.m[h]
	for e != nil && (e.key != key || e.ns != ns) {
		e = e.next
	}
	tat := now
	if e != nil && e.tat > now {
		tat = e.tat
	}
	res := gcra(now, tat, t, burst, n)
	if res.Allowed && n > 0 {
		if e == nil {
			e = &rateEntry{ns: ns, key: key, next: sh.m[h]}
			sh.m[h] = e
			sh.n++
		}
		e.tat = tat + t*n
		if sh.n >= sh.sweepAt {
			sh.sweepLocked(now)
		}
	}
	sh.mu.Unlock()
	return res
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

// sweepLocked drops entries whose state has fully decayed (tat ≤ now):
// they are indistinguishable from absent keys.
func (sh *rateShard) sweepLocked(now int64) {
	for h, e := range sh.m {
		var keep *rateEntry
		for ; e != nil; e = e.next {
			if e.tat > now {
				keep = &rateEntry{ns: e.ns, key: e.key, tat: e.tat, next: keep}
			} else {
				sh.n--
			}
		}
		if keep == nil {
			delete(sh.m, h)
		} else {
			sh.m[h] = keep
		}
	}
	sh.sweepAt = max(rateSweepMinSize, 2*sh.n)
}
