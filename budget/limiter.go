package budget

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/talosgo/talos/contracts"
)

// A Limit is a GCRA rate limit: Rate events per Period on average, with
// bursts of up to Burst events. Limits are comparable values.
type Limit struct {
	Rate   int64
	Period time.Duration
	// Burst is the most events admitted at once. If zero, Rate is used.
	Burst int64
}

// PerSecond returns a limit of n events per second with a burst of n.
func PerSecond(n int64) Limit { return Limit{Rate: n, Period: time.Second, Burst: n} }

// PerMinute returns a limit of n events per minute with a burst of n
// (the contract's rpm).
func PerMinute(n int64) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerHour returns a limit of n events per hour with a burst of n.
func PerHour(n int64) Limit { return Limit{Rate: n, Period: time.Hour, Burst: n} }

// EffectiveBurst returns Burst, or Rate when Burst is zero.
func (l Limit) EffectiveBurst() int64 {
	if l.Burst == 0 {
		return l.Rate
	}
	return l.Burst
}

// Interval returns the GCRA emission interval Period/Rate, truncated to a
// whole microsecond (the resolution both back-ends share).
func (l Limit) Interval() time.Duration {
	if l.Rate <= 0 {
		return 0
	}
	return (l.Period / time.Duration(l.Rate)).Truncate(time.Microsecond)
}

// Validate reports a TALOS_INVALID_INPUT error unless 1 ≤ Rate ≤ MaxRate,
// 0 ≤ Burst ≤ MaxBurst, Period/Rate ≥ 1µs and Interval×Burst ≤ MaxLimitSpan.
func (l Limit) Validate() error {
	if l.Rate < 1 || l.Rate > MaxRate || l.Burst < 0 || l.Burst > MaxBurst {
		return invalid("rate limit out of range")
	}
	t := l.Interval()
	if t < time.Microsecond {
		return invalid("rate limit interval below one microsecond")
	}
	if l.EffectiveBurst() > int64(MaxLimitSpan/t) {
		return invalid("rate limit span too long")
	}
	return nil
}

// A Result is a rate-limit decision. Denial is a Result, not an error.
type Result struct {
	Allowed bool
	// Remaining is how many more events of size 1 would be admitted now.
	Remaining int64
	// RetryAfter is how long until the same request would be admitted:
	// zero when allowed, negative when n exceeds the burst (never).
	RetryAfter time.Duration
	// ResetAfter is how long until the limiter is back to its full burst.
	ResetAfter time.Duration
	// Degraded is true when the store failed and the decision was made by
	// the fallback limiter or by the fail-open policy.
	Degraded bool
}

// Err returns nil when r is allowed and otherwise a *contracts.Error with
// code RATE_LIMITED (retryable, with retry_after_ms in Details).
func (r Result) Err() error {
	if r.Allowed {
		return nil
	}
	e := contracts.New(contracts.CodeRateLimited, "budget: rate limited")
	e.Retryable = r.RetryAfter >= 0
	e.Details = map[string]any{"retry_after_ms": r.RetryAfter.Milliseconds()}
	return e
}

// A RateStore performs one atomic GCRA step for key in namespace ns: it
// admits n events if they fit under lim and records them, or returns a
// denied Result and changes nothing. Over the limit is a Result; an error
// means only that the store failed. Implementations must be safe for
// concurrent use. ns and key are valid IDs (see ValidateID).
type RateStore interface {
	AllowN(ctx context.Context, ns, key string, lim Limit, n int64) (Result, error)
}

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Store keeps the limiter state. Required.
	Store RateStore
	// Surface names what is limited ("llm", "mcp", "http", ...); keys of
	// different surfaces never share state. Required, a valid ID.
	Surface string
	// Limit is the rate limit. Required.
	Limit Limit
	// Timeout bounds each store call. If zero, only the caller's context
	// bounds it.
	Timeout time.Duration
	// Fallback, if set, decides when Store fails (a local MemRates
	// keeps a per-replica limit while Redis is down). Results from it are
	// marked Degraded.
	Fallback RateStore
	// FailOpenUnsafe admits every request when Store fails and there is no
	// Fallback (or it failed too). The default, false, denies. Fail-open
	// lets anyone exceed the limit by overloading or cutting off the store.
	FailOpenUnsafe bool
	// OnEvent, if set, receives a UsageEvent (Kind EventRateLimit) for
	// every denial, store failure and degraded decision. It runs
	// synchronously and must not block.
	OnEvent func(UsageEvent)
	// Now is the clock for event timestamps. If nil, time.Now is used.
	Now func() time.Time
}

// A Limiter admits events at a rate, per key. It holds no per-key state
// itself (the Store does) and is safe for concurrent use.
type Limiter struct {
	cfg   LimiterConfig
	mem   *MemRates  // Store, when it is the in-memory store (the fast path)
	space *rateSpace // mem's map for Surface
	t     int64      // emission interval in nanoseconds, for MemRates
	burst int64
}

// NewLimiter validates cfg and returns a Limiter.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if cfg.Store == nil {
		return nil, invalid("LimiterConfig.Store is required")
	}
	if err := ValidateID("surface", cfg.Surface); err != nil {
		return nil, err
	}
	if err := cfg.Limit.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, invalid("negative timeout")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, t: int64(cfg.Limit.Interval()), burst: cfg.Limit.EffectiveBurst()}
	if l.mem, _ = cfg.Store.(*MemRates); l.mem != nil {
		l.space = l.mem.space(cfg.Surface)
	}
	return l, nil
}

// Limit returns the limiter's limit.
func (l *Limiter) Limit() Limit { return l.cfg.Limit }

// Allow admits n events (n ≥ 0; n = 0 only reports the state) for key, a
// valid ID. It returns an error only for invalid input or when the store
// failed and the failure policy did not decide: then Allowed is false and
// the caller must deny. Store errors are *contracts.Error values with code
// TALOS_TRANSPORT_TIMEOUT or TALOS_TRANSPORT_ERROR.
func (l *Limiter) Allow(ctx context.Context, key string, n int64) (Result, error) {
	if l.mem != nil && n >= 0 && ctx.Err() == nil {
		// The in-memory fast path: the limit was validated in NewLimiter,
		// the key is validated by the store when it has no entry yet.
		res, ok := l.space.allow(l.mem, key, l.t, l.burst, n)
		if !ok {
			return Result{}, ValidateID("limiter key", key)
		}
		if !res.Allowed && l.cfg.OnEvent != nil {
			l.event(key, StatusDenied, false)
		}
		return res, nil
	}
	if !validID(key) {
		return Result{}, ValidateID("limiter key", key)
	}
	if n < 0 {
		return Result{}, invalid("negative event count")
	}
	res, err := l.call(ctx, l.cfg.Store, key, n)
	if err == nil {
		if !res.Allowed {
			l.event(key, StatusDenied, false)
		}
		return res, nil
	}
	if errors.Is(err, contracts.ErrInvalidInput) {
		return Result{}, err // a caller error, not a store failure: no fallback, no fail-open
	}
	err = storeError(err)
	if l.cfg.Fallback != nil {
		if fres, ferr := l.call(ctx, l.cfg.Fallback, key, n); ferr == nil {
			fres.Degraded = true
			l.event(key, statusOf(fres), true)
			return fres, nil
		}
	}
	if l.cfg.FailOpenUnsafe {
		l.event(key, StatusSuccess, true)
		return Result{Allowed: true, Degraded: true}, nil
	}
	l.event(key, StatusError, false)
	return Result{}, err
}

func statusOf(r Result) string {
	if r.Allowed {
		return StatusSuccess
	}
	return StatusDenied
}

func (l *Limiter) call(ctx context.Context, s RateStore, key string, n int64) (Result, error) {
	if m, ok := s.(*MemRates); ok { // the limit was validated once, in NewLimiter
		if err := ctxErr(ctx); err != nil {
			return Result{}, err
		}
		res, _ := m.space(l.cfg.Surface).allow(m, key, l.t, l.burst, n) // key checked by Allow
		return res, nil
	}
	if l.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	return s.AllowN(ctx, l.cfg.Surface, key, l.cfg.Limit, n)
}

func (l *Limiter) event(key, status string, degraded bool) {
	if l.cfg.OnEvent == nil {
		return
	}
	meta := Meta{KeyID: key}
	if l.cfg.Surface == "llm" || l.cfg.Surface == "mcp" {
		meta.Surface = l.cfg.Surface
	}
	e := NewUsageEvent(EventRateLimit, status, l.cfg.Now(), meta)
	e.Scope, e.Degraded = l.cfg.Surface, degraded
	l.cfg.OnEvent(e)
}

// storeError returns err as a *contracts.Error: a contract error is kept,
// a deadline becomes TALOS_TRANSPORT_TIMEOUT, anything else
// TALOS_TRANSPORT_ERROR. Both are retryable.
func storeError(err error) error {
	var ce *contracts.Error
	if errors.As(err, &ce) {
		return err
	}
	code := contracts.CodeTransportError
	if errors.Is(err, context.DeadlineExceeded) {
		code = contracts.CodeTransportTimeout
	}
	return contracts.Wrap(code, "budget: store failed", err).WithRetryable(true)
}

// Limits holds one Limiter per surface, such as the contract's
// rate_limits for "llm" and "mcp". It is safe for concurrent use.
type Limits struct {
	by map[string]*Limiter
}

// NewLimits returns a Limiter for every surface in perSurface, each
// configured like base with its own Surface and Limit.
func NewLimits(base LimiterConfig, perSurface map[string]Limit) (*Limits, error) {
	s := &Limits{by: make(map[string]*Limiter, len(perSurface))}
	for surface, lim := range perSurface {
		cfg := base
		cfg.Surface, cfg.Limit = surface, lim
		l, err := NewLimiter(cfg)
		if err != nil {
			return nil, err
		}
		s.by[surface] = l
	}
	return s, nil
}

// Limiter returns the surface's Limiter, or nil.
func (s *Limits) Limiter(surface string) *Limiter { return s.by[surface] }

// Allow calls Allow on the surface's Limiter. A surface without a limit is
// a TALOS_INVALID_INPUT error (deny), never an implicit allow.
func (s *Limits) Allow(ctx context.Context, surface, key string, n int64) (Result, error) {
	l := s.by[surface]
	if l == nil {
		return Result{}, invalid("no rate limit for surface " + strconv.Quote(surface))
	}
	return l.Allow(ctx, key, n)
}
