package pgsplit

import (
	"sync"
	"time"
)

// State is a circuit breaker state.
type State int

// The three breaker states.
const (
	// Closed: calls go through; consecutive failures are counted.
	Closed State = iota
	// Open: calls are refused until OpenDuration has passed since the trip.
	Open
	// HalfOpen: up to HalfOpenProbes calls go through as probes; all of
	// them succeeding closes the breaker, any failure opens it again.
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// BreakerConfig configures a [Breaker]. The zero value is usable: every zero
// field takes its default.
type BreakerConfig struct {
	// FailureThreshold is the number of consecutive failures that opens a
	// closed breaker. If zero, DefaultFailureThreshold is used.
	FailureThreshold int
	// OpenDuration is how long an open breaker refuses calls before it lets
	// probes through. If zero, DefaultOpenDuration is used.
	OpenDuration time.Duration
	// HalfOpenProbes is the number of probe calls admitted in the half-open
	// state; that many successes close the breaker. If zero,
	// DefaultHalfOpenProbes is used.
	HalfOpenProbes int
	// Now returns the current time. If nil, time.Now is used (tests inject a
	// fake clock here).
	Now func() time.Time
	// OnStateChange, if set, is called (without the breaker's lock held)
	// after every state transition.
	OnStateChange func(from, to State)
}

// Defaults of [BreakerConfig].
const (
	DefaultFailureThreshold = 5
	DefaultOpenDuration     = 10 * time.Second
	DefaultHalfOpenProbes   = 1
)

// A Breaker is a closed / open / half-open circuit breaker. It is safe for
// concurrent use.
type Breaker struct {
	cfg BreakerConfig

	mu        sync.Mutex // guards the fields below
	state     State
	failures  int       // consecutive failures while closed
	openedAt  time.Time // when the breaker last opened
	inFlight  int       // probes admitted and not yet finished (half-open)
	successes int       // successful probes (half-open)
	gen       uint64    // incremented on every transition; stale results are ignored
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = DefaultFailureThreshold
	}
	if cfg.OpenDuration <= 0 {
		cfg.OpenDuration = DefaultOpenDuration
	}
	if cfg.HalfOpenProbes <= 0 {
		cfg.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{cfg: cfg}
}

// State returns the current state, moving an open breaker whose open
// duration has passed to half-open.
func (b *Breaker) State() State {
	b.mu.Lock()
	from, to := b.tickLocked()
	b.mu.Unlock()
	b.notify(from, to)
	return to
}

// Outcome is the result of a call admitted by [Breaker.Allow].
type Outcome int

// Call outcomes.
const (
	// Success: the dependency worked.
	Success Outcome = iota
	// Failure: the dependency failed.
	Failure
	// Ignored: the call says nothing about the dependency (the caller gave
	// up first); it only releases a half-open probe slot.
	Ignored
)

// Allow asks whether a call may proceed. When ok is true the caller must call
// done exactly once with the call's outcome; later calls are ignored. When ok
// is false the caller must not call the dependency, and done is nil.
func (b *Breaker) Allow() (done func(Outcome), ok bool) {
	b.mu.Lock()
	from, to := b.tickLocked()
	switch b.state {
	case Open:
		b.mu.Unlock()
		b.notify(from, to)
		return nil, false
	case HalfOpen:
		if b.inFlight+b.successes >= b.cfg.HalfOpenProbes {
			b.mu.Unlock()
			b.notify(from, to)
			return nil, false
		}
		b.inFlight++
	}
	gen := b.gen
	b.mu.Unlock()
	b.notify(from, to)
	var once sync.Once
	return func(o Outcome) { once.Do(func() { b.record(gen, o) }) }, true
}

func (b *Breaker) record(gen uint64, o Outcome) {
	b.mu.Lock()
	if gen != b.gen {
		// The breaker changed state since this call was admitted: its
		// outcome says nothing about the current state.
		b.mu.Unlock()
		return
	}
	from := b.state
	switch b.state {
	case Closed:
		switch o {
		case Success:
			b.failures = 0
		case Failure:
			if b.failures++; b.failures >= b.cfg.FailureThreshold {
				b.toLocked(Open)
			}
		}
	case HalfOpen:
		b.inFlight--
		switch o {
		case Failure:
			b.toLocked(Open)
		case Success:
			if b.successes++; b.successes >= b.cfg.HalfOpenProbes {
				b.toLocked(Closed)
			}
		}
	}
	to := b.state
	b.mu.Unlock()
	b.notify(from, to)
}

// tickLocked moves an open breaker to half-open once its open duration has
// passed. It returns the transition made (from == to when none).
func (b *Breaker) tickLocked() (from, to State) {
	from = b.state
	if b.state == Open && !b.cfg.Now().Before(b.openedAt.Add(b.cfg.OpenDuration)) {
		b.toLocked(HalfOpen)
	}
	return from, b.state
}

func (b *Breaker) toLocked(s State) {
	b.state = s
	b.gen++
	b.failures, b.inFlight, b.successes = 0, 0, 0
	if s == Open {
		b.openedAt = b.cfg.Now()
	}
}

func (b *Breaker) notify(from, to State) {
	if from != to && b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(from, to)
	}
}
