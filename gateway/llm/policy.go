package llm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Routing strategies ([RoutingPolicy.Strategy]), as named by contract
// ai_gateway/routing_policy.
const (
	// StrategyWeightedHash orders a model group's upstreams by weighted
	// rendezvous hashing of the caller's principal: one caller keeps its
	// upstream while the group is unchanged, and callers spread over the
	// upstreams in proportion to [ModelRoute.Weights].
	StrategyWeightedHash = "weighted_hash"
	// StrategyRoundRobin starts each call on the next upstream of the
	// group, in turn.
	StrategyRoundRobin = "round_robin"
	// StrategyLeastLatency starts each call on the upstream with the
	// lowest moving average (EWMA) of observed latency; upstreams not yet
	// measured come first, in the group's order.
	StrategyLeastLatency = "least_latency"
)

// Defaults of contract ai_gateway/routing_policy, applied by
// [ParseRoutingPolicy] to fields a document leaves out.
const (
	DefaultPolicyTimeout           = 30 * time.Second
	DefaultPolicyMaxAttempts       = 3
	DefaultPolicyBackoff           = 500 * time.Millisecond
	DefaultPolicyBackoffMultiplier = 2
	DefaultPolicyFailureThreshold  = 3
	DefaultPolicyWindow            = 60 * time.Second
	DefaultPolicyCooldown          = 300 * time.Second
)

// Limits of a routing policy, beyond the contract's minimums: a policy
// past them is refused ([RoutingPolicy.Check]).
const (
	MaxPolicyTimeout           = time.Hour
	MaxPolicyAttempts          = 10
	MaxPolicyBackoff           = time.Minute
	MaxPolicyBackoffMultiplier = 10
	MaxPolicyFailureThreshold  = 1000
	MaxPolicyWindow            = 24 * time.Hour
	MaxPolicyCooldown          = 24 * time.Hour
	// MaxPolicies bounds the policies of one [Proxy.SetPolicies].
	MaxPolicies = 1024
	// MaxRouteWeight bounds one entry of [ModelRoute.Weights].
	MaxRouteWeight = 1_000_000
)

// latencyAlpha is the weight of a new latency sample in the EWMA.
const latencyAlpha = 0.3

// A RoutingPolicy is how calls to a model group are spread over its
// upstreams and retried (contract ai_gateway/routing_policy). A route
// follows the policy whose ID is its [ModelRoute.Policy], or, when that is
// empty, the policy whose ID is its model; a route without a policy tries
// its upstreams once each, in order, with Config.Timeout and
// Config.Breaker.
type RoutingPolicy struct {
	// ID names the policy; Version is the document's version (reported,
	// not interpreted).
	ID      string
	Version int64
	// Strategy is StrategyWeightedHash, StrategyRoundRobin or
	// StrategyLeastLatency: which upstream a call starts on, the others
	// following in the strategy's order.
	Strategy string
	// Timeout bounds one attempt (for a stream, the wait for its answer
	// and then for each chunk). Zero means Config.Timeout.
	Timeout time.Duration
	// MaxAttempts is the number of attempts a call makes in all, over the
	// upstreams in the strategy's order (starting again at the first when
	// there are fewer upstreams than attempts); zero or one means a single
	// attempt. Only a 5xx, a timeout or no answer is retried, and never
	// once a streamed answer has started.
	MaxAttempts int
	// Backoff is the wait before the second attempt, multiplied by
	// BackoffMultiplier (at least 1) before each later one.
	Backoff           time.Duration
	BackoffMultiplier float64
	// Cooldown is each upstream's circuit breaker under this policy: with
	// Window set, Failures failures within Window open it for Cooldown.
	// A zero Failures or Cooldown means Config.Breaker's.
	Cooldown BreakerConfig
}

// Check reports whether p is within the contract and the proxy's limits
// (Max… constants); errors are *contracts.Error (TALOS_INVALID_INPUT).
func (p RoutingPolicy) Check() error {
	bad := func(msg string) error {
		return contracts.New(contracts.CodeInvalidInput, "llm: routing policy "+p.ID+": "+msg)
	}
	switch {
	case p.ID == "" || len(p.ID) > 128:
		return bad("id must be 1 to 128 bytes")
	case p.Strategy != StrategyWeightedHash && p.Strategy != StrategyRoundRobin && p.Strategy != StrategyLeastLatency:
		return bad("unknown strategy")
	case p.Timeout < 0 || p.Timeout > MaxPolicyTimeout:
		return bad("timeout out of range")
	case p.MaxAttempts < 0 || p.MaxAttempts > MaxPolicyAttempts:
		return bad("max_attempts out of range")
	case p.Backoff < 0 || p.Backoff > MaxPolicyBackoff:
		return bad("backoff out of range")
	case p.BackoffMultiplier != 0 && (p.BackoffMultiplier < 1 || p.BackoffMultiplier > MaxPolicyBackoffMultiplier) || math.IsNaN(p.BackoffMultiplier):
		return bad("backoff_multiplier out of range")
	case p.Cooldown.Failures < 0 || p.Cooldown.Failures > MaxPolicyFailureThreshold:
		return bad("failure_threshold out of range")
	case p.Cooldown.Window < 0 || p.Cooldown.Window > MaxPolicyWindow:
		return bad("window out of range")
	case p.Cooldown.Cooldown < 0 || p.Cooldown.Cooldown > MaxPolicyCooldown:
		return bad("cooldown out of range")
	}
	return nil
}

// policyDoc is contract ai_gateway/routing_policy.
type policyDoc struct {
	ID        string  `json:"id"`
	Version   *int64  `json:"version"`
	Strategy  *string `json:"strategy"`
	TimeoutMS *int64  `json:"timeout_ms"`
	Retries   *struct {
		MaxAttempts       *int64   `json:"max_attempts"`
		BackoffMS         *int64   `json:"backoff_ms"`
		BackoffMultiplier *float64 `json:"backoff_multiplier"`
	} `json:"retries"`
	Cooldown *struct {
		FailureThreshold *int64 `json:"failure_threshold"`
		WindowSeconds    *int64 `json:"window_seconds"`
		CooldownSeconds  *int64 `json:"cooldown_seconds"`
	} `json:"cooldown"`
}

// ParseRoutingPolicy decodes a contract ai_gateway/routing_policy
// document (unknown or mis-cased fields, duplicate keys and trailing data
// refused), fills the contract's defaults for the fields it leaves out
// (Default… constants) and checks it ([RoutingPolicy.Check]). Errors are
// *contracts.Error (TALOS_INVALID_INPUT).
func ParseRoutingPolicy(doc []byte) (RoutingPolicy, error) {
	bad := func(msg string) (RoutingPolicy, error) {
		return RoutingPolicy{}, contracts.New(contracts.CodeInvalidInput, "llm: routing policy: "+msg)
	}
	var d policyDoc
	if err := contracts.UnmarshalFieldsKnown(doc, &d); err != nil {
		return bad("not a routing_policy document")
	}
	if d.Version == nil || *d.Version < 1 {
		return bad("version must be an integer >= 1")
	}
	if d.Strategy == nil {
		return bad("strategy is required")
	}
	// in checks a field against [lo, hi] before it is scaled, so that no
	// multiplication overflows.
	in := func(v *int64, lo, hi int64) bool { return v == nil || (*v >= lo && *v <= hi) }
	p := RoutingPolicy{
		ID: d.ID, Version: *d.Version, Strategy: *d.Strategy,
		Timeout: DefaultPolicyTimeout, MaxAttempts: DefaultPolicyMaxAttempts,
		Backoff: DefaultPolicyBackoff, BackoffMultiplier: DefaultPolicyBackoffMultiplier,
		Cooldown: BreakerConfig{Failures: DefaultPolicyFailureThreshold, Window: DefaultPolicyWindow, Cooldown: DefaultPolicyCooldown},
	}
	if !in(d.TimeoutMS, 100, MaxPolicyTimeout.Milliseconds()) {
		return bad("timeout_ms must be 100 to " + itoa(MaxPolicyTimeout.Milliseconds()))
	}
	if d.TimeoutMS != nil {
		p.Timeout = time.Duration(*d.TimeoutMS) * time.Millisecond
	}
	if r := d.Retries; r != nil {
		switch {
		case !in(r.MaxAttempts, 0, MaxPolicyAttempts):
			return bad("max_attempts must be 0 to " + itoa(MaxPolicyAttempts))
		case !in(r.BackoffMS, 0, MaxPolicyBackoff.Milliseconds()):
			return bad("backoff_ms must be 0 to " + itoa(MaxPolicyBackoff.Milliseconds()))
		case r.BackoffMultiplier != nil && !(*r.BackoffMultiplier >= 1 && *r.BackoffMultiplier <= MaxPolicyBackoffMultiplier):
			return bad("backoff_multiplier must be 1 to " + itoa(MaxPolicyBackoffMultiplier))
		}
		if r.MaxAttempts != nil {
			p.MaxAttempts = int(*r.MaxAttempts)
		}
		if r.BackoffMS != nil {
			p.Backoff = time.Duration(*r.BackoffMS) * time.Millisecond
		}
		if r.BackoffMultiplier != nil {
			p.BackoffMultiplier = *r.BackoffMultiplier
		}
	}
	if c := d.Cooldown; c != nil {
		switch {
		case !in(c.FailureThreshold, 1, MaxPolicyFailureThreshold):
			return bad("failure_threshold must be 1 to " + itoa(MaxPolicyFailureThreshold))
		case !in(c.WindowSeconds, 1, int64(MaxPolicyWindow/time.Second)):
			return bad("window_seconds must be 1 to " + itoa(int64(MaxPolicyWindow/time.Second)))
		case !in(c.CooldownSeconds, 1, int64(MaxPolicyCooldown/time.Second)):
			return bad("cooldown_seconds must be 1 to " + itoa(int64(MaxPolicyCooldown/time.Second)))
		}
		if c.FailureThreshold != nil {
			p.Cooldown.Failures = int(*c.FailureThreshold)
		}
		if c.WindowSeconds != nil {
			p.Cooldown.Window = time.Duration(*c.WindowSeconds) * time.Second
		}
		if c.CooldownSeconds != nil {
			p.Cooldown.Cooldown = time.Duration(*c.CooldownSeconds) * time.Second
		}
	}
	if err := p.Check(); err != nil {
		return RoutingPolicy{}, err
	}
	return p, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// SetPolicies replaces the proxy's routing policies by ID at once: calls
// that start afterwards follow the new set, calls in flight finish under
// the old one. Every policy is checked ([RoutingPolicy.Check]) and each
// key must equal its policy's ID; on error nothing changes. A nil or
// empty map removes every policy. Circuit breaker and latency state of
// the upstreams is kept. It is safe for concurrent use.
func (l *Proxy) SetPolicies(policies map[string]RoutingPolicy) error {
	if len(policies) > MaxPolicies {
		return contracts.New(contracts.CodeInvalidInput, "llm: too many routing policies")
	}
	m := make(map[string]*RoutingPolicy, len(policies))
	for id, p := range policies {
		if err := p.Check(); err != nil {
			return err
		}
		if id != p.ID {
			return contracts.New(contracts.CodeInvalidInput, "llm: routing policy "+id+" keyed by another id")
		}
		p := p
		m[id] = &p
	}
	l.pol.Store(&m)
	return nil
}

// Policies returns the routing policies in force, by ID.
func (l *Proxy) Policies() map[string]RoutingPolicy {
	m := l.pol.Load()
	out := make(map[string]RoutingPolicy, len(*m))
	for id, p := range *m {
		out[id] = *p
	}
	return out
}

// PolicyOf returns the routing policy model's route follows now, and
// false when it follows none (or the model is not routed).
func (l *Proxy) PolicyOf(model string) (RoutingPolicy, bool) {
	rt := l.routeFor(model)
	if rt == nil {
		return RoutingPolicy{}, false
	}
	if p := l.policyFor(rt); p != nil {
		return *p, true
	}
	return RoutingPolicy{}, false
}

// policyFor returns the policy rt follows, nil for none.
func (l *Proxy) policyFor(rt *route) *RoutingPolicy {
	id := rt.policy
	if id == "" {
		id = rt.model
	}
	if id == "" {
		return nil
	}
	return (*l.pol.Load())[id]
}

// plan is how one call goes over its route's upstreams.
type plan struct {
	order    []*upstream // the strategy's order
	attempts int         // attempts in all; with cycle false, each upstream once
	cycle    bool        // go round order again until attempts are made
	timeout  time.Duration
	backoff  time.Duration
	mult     float64
	breaker  BreakerConfig
	// total bounds the whole of the attempts and the waits between them.
	total time.Duration
}

// planFor returns the plan of a call to rt by the caller key (the
// principal, for StrategyWeightedHash).
func (l *Proxy) planFor(rt *route, key string) plan {
	p := l.policyFor(rt)
	if p == nil {
		n := len(rt.ups)
		return plan{order: rt.ups, attempts: n, timeout: l.cfg.Timeout, breaker: l.cfg.Breaker, total: time.Duration(n) * l.cfg.Timeout}
	}
	pl := plan{attempts: max(1, p.MaxAttempts), cycle: true, timeout: p.Timeout, backoff: p.Backoff, mult: max(1, p.BackoffMultiplier), breaker: p.Cooldown}
	if pl.timeout <= 0 {
		pl.timeout = l.cfg.Timeout
	}
	if pl.breaker.Failures <= 0 {
		pl.breaker.Failures = l.cfg.Breaker.Failures
	}
	if pl.breaker.Cooldown <= 0 {
		pl.breaker.Cooldown = l.cfg.Breaker.Cooldown
	}
	switch p.Strategy {
	case StrategyRoundRobin:
		n := len(rt.ups)
		if n > 0 {
			start := int((rt.rr.Add(1) - 1) % uint64(n))
			pl.order = append(slices.Clone(rt.ups[start:]), rt.ups[:start]...)
		}
	case StrategyLeastLatency:
		pl.order = slices.Clone(rt.ups)
		lat := make(map[*upstream]float64, len(pl.order))
		for _, u := range pl.order {
			lat[u] = u.lat.value()
		}
		slices.SortStableFunc(pl.order, func(a, b *upstream) int { return cmp.Compare(lat[a], lat[b]) })
	default: // StrategyWeightedHash
		pl.order = rendezvous(rt, key)
	}
	pl.total = time.Duration(pl.attempts) * pl.timeout
	for i, d := 1, float64(pl.backoff); i < pl.attempts; i, d = i+1, d*pl.mult {
		pl.total += time.Duration(min(d, float64(MaxPolicyTimeout)))
	}
	return pl
}

// rendezvous orders rt's upstreams of non-zero weight by weighted
// rendezvous (highest random weight) hashing of key: the score of an
// upstream of weight w is -w / ln(h), h uniform in (0, 1) from
// SHA-256(key, upstream name).
func rendezvous(rt *route, key string) []*upstream {
	type scored struct {
		u     *upstream
		score float64
	}
	s := make([]scored, 0, len(rt.ups))
	for i, u := range rt.ups {
		w := 100
		if i < len(rt.weights) {
			w = rt.weights[i]
		}
		if w <= 0 {
			continue // drained: never chosen
		}
		sum := sha256.Sum256([]byte(key + "\x00" + u.name))
		h := (float64(binary.BigEndian.Uint64(sum[:8])>>11) + 0.5) / (1 << 53)
		s = append(s, scored{u, -float64(w) / math.Log(h)})
	}
	slices.SortStableFunc(s, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
	out := make([]*upstream, len(s))
	for i, x := range s {
		out[i] = x.u
	}
	return out
}

// latency is an EWMA of an upstream's observed latency.
type latency struct {
	mu   sync.Mutex // guards ewma
	ewma float64    // nanoseconds; 0: not measured
}

func (l *latency) observe(d time.Duration) {
	l.mu.Lock()
	if l.ewma == 0 {
		l.ewma = float64(max(d, 1))
	} else {
		l.ewma = latencyAlpha*float64(d) + (1-latencyAlpha)*l.ewma
	}
	l.mu.Unlock()
}

func (l *latency) value() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ewma
}

// wait sleeps d unless ctx ends first (false).
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
