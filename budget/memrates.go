package budget

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// MemRates is the in-memory RateStore. It is safe for concurrent use
// and scales across cores: a decision is one lock-free map read (the map
// of the namespace's keys) and one compare-and-swap of the key's state, so
// requests for different keys share no written memory and requests for
// one key contend only on that key. When a namespace's map has doubled
// since its last sweep, keys whose state fully decayed more than 100 ms
// ago are dropped, so memory is bounded by the keys active within one
// burst span plus 100 ms, and keys in steady use are not re-created. It
// starts no goroutine.
type MemRates struct {
	base time.Time        // monotonic origin; state is nanoseconds since base
	now  func() time.Time // nil: time.Since(base), no indirect call
	nss  sync.Map         // namespace → *rateSpace
}

const (
	rateSweepMinSize = 64
	// rateSweepIdle is how long after decaying fully a key is kept.
	rateSweepIdle = 100 * time.Millisecond
)

// deadTat marks an entry a sweep has removed: a decision that finds it
// looks the key up again.
const deadTat = math.MinInt64

// rateSpace holds one namespace's keys.
type rateSpace struct {
	keys    sync.Map     // key → *rateEntry
	n       atomic.Int64 // entries stored
	sweepAt atomic.Int64 // sweep when n reaches it
	sweepMu sync.Mutex   // guards sweeping (one sweeper at a time)
}

// rateEntry is one key's GCRA state: the theoretical arrival time in
// nanoseconds since base, or deadTat.
type rateEntry struct {
	tat atomic.Int64
}

var _ RateStore = (*MemRates)(nil)

// NewMemRates returns an empty store. now is its clock; if nil,
// time.Now (monotonic) is used.
func NewMemRates(now func() time.Time) *MemRates {
	m := &MemRates{now: now}
	if now == nil {
		m.base = time.Now()
	} else {
		m.base = now()
	}
	return m
}

// AllowN implements RateStore with GCRA in nanoseconds.
func (m *MemRates) AllowN(ctx context.Context, ns, key string, lim Limit, n int64) (Result, error) {
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	if err := lim.Validate(); err != nil {
		return Result{}, err
	}
	if n < 0 {
		return Result{}, invalid("negative event count")
	}
	if err := ValidateID("namespace", ns); err != nil {
		return Result{}, err
	}
	res, ok := m.space(ns).allow(m, key, int64(lim.Interval()), lim.EffectiveBurst(), n)
	if !ok {
		return Result{}, ValidateID("rate key", key)
	}
	return res, nil
}

// space returns the namespace's key map, creating it if needed.
func (m *MemRates) space(ns string) *rateSpace {
	if v, ok := m.nss.Load(ns); ok {
		return v.(*rateSpace)
	}
	s := &rateSpace{}
	s.sweepAt.Store(rateSweepMinSize)
	v, _ := m.nss.LoadOrStore(ns, s)
	return v.(*rateSpace)
}

func (m *MemRates) nanos() int64 {
	if m.now == nil {
		return int64(time.Since(m.base))
	}
	return int64(m.now().Sub(m.base))
}

// allow decides n ≥ 0 events for key under a validated limit (interval t
// in nanoseconds, burst). It validates key only when the key has no entry:
// every stored key was validated before it was stored, and a lookup that
// finds one compared the whole key. ok is false for an invalid key
// (nothing was changed).
func (s *rateSpace) allow(m *MemRates, key string, t, burst, n int64) (res Result, ok bool) {
	now := m.nanos()
	v, found := s.keys.Load(key)
	if !found && !validID(key) {
		return Result{}, false
	}
	if n > burst {
		return Result{RetryAfter: -1}, true
	}
	for {
		var dead any // a swept entry still in the map
		if found {
			e := v.(*rateEntry)
			for {
				old := e.tat.Load()
				if old == deadTat {
					dead = v
					break
				}
				tat := max(old, now)
				res = gcra(now, tat, t, burst, n)
				if !res.Allowed || n == 0 || e.tat.CompareAndSwap(old, tat+t*n) {
					return res, true
				}
			}
		}
		// No live entry: the key's state has fully decayed.
		res = gcra(now, now, t, burst, n)
		if !res.Allowed || n == 0 {
			return res, true // nothing to record: no entry for a denial
		}
		e := &rateEntry{}
		e.tat.Store(now + t*n)
		// If another decision stores or replaces the entry first, decide
		// against what is there now.
		if dead != nil {
			if s.keys.CompareAndSwap(key, dead, e) {
				return res, true // the sweep's delete now fails and does not count
			}
			v, found = s.keys.Load(key)
		} else if v, found = s.keys.LoadOrStore(key, e); !found {
			if s.n.Add(1) >= s.sweepAt.Load() {
				s.sweep(m)
			}
			return res, true
		}
	}
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

// sweep drops entries whose state fully decayed at least rateSweepIdle
// ago: they are indistinguishable from absent keys. (Keys decayed more
// recently are kept so that keys in steady use are not dropped and
// re-created at every sweep.) An entry is first marked dead with a
// compare-and-swap, so a decision racing with the sweep either lands
// before the mark (and the entry is kept) or sees the mark and replaces
// the dead entry with a fresh one (a decayed key starts from now): no
// admitted event is lost. Only one sweep runs at a time;
// a decision that finds one running does not wait.
func (s *rateSpace) sweep(m *MemRates) {
	if !s.sweepMu.TryLock() {
		return
	}
	defer s.sweepMu.Unlock()
	now := m.nanos()
	cutoff := now - int64(rateSweepIdle)
	s.keys.Range(func(k, v any) bool {
		e := v.(*rateEntry)
		if old := e.tat.Load(); old <= cutoff && old != deadTat && e.tat.CompareAndSwap(old, deadTat) &&
			s.keys.CompareAndDelete(k, v) {
			s.n.Add(-1)
		}
		return true
	})
	s.sweepAt.Store(max(rateSweepMinSize, 2*s.n.Load()))
}
