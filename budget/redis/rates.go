package redis

import (
	"context"
	"strings"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// DefaultRatesPrefix starts every rate-limit key.
const DefaultRatesPrefix = "talos:rate:v1:"

// Rates is a budget.RateStore on Redis: one GCRA script run per decision
// on the server's clock, the key hash-tagged as {surface:key}. It is safe
// for concurrent use and starts no goroutines.
type Rates struct {
	c      Client
	prefix string
}

var _ budget.RateStore = (*Rates)(nil)

// NewRates returns a RateStore on c. prefix starts every key; if empty,
// DefaultRatesPrefix is used.
func NewRates(c Client, prefix string) (*Rates, error) {
	if c == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "budget/redis: a client is required")
	}
	if prefix == "" {
		prefix = DefaultRatesPrefix
	}
	if strings.ContainsAny(prefix, "{}") || len(prefix) > budget.MaxIDLen {
		return nil, contracts.New(contracts.CodeInvalidInput, "budget/redis: prefix must be short and free of braces")
	}
	return &Rates{c: c, prefix: prefix}, nil
}

// AllowN implements budget.RateStore.
func (s *Rates) AllowN(ctx context.Context, ns, key string, lim budget.Limit, n int64) (budget.Result, error) {
	if err := lim.Validate(); err != nil {
		return budget.Result{}, err
	}
	if err := budget.ValidateID("surface", ns); err != nil {
		return budget.Result{}, err
	}
	if err := budget.ValidateID("limiter key", key); err != nil {
		return budget.Result{}, err
	}
	burst := lim.EffectiveBurst()
	if n < 0 {
		return budget.Result{}, contracts.New(contracts.CodeInvalidInput, "budget: negative event count")
	}
	if n > burst {
		return budget.Result{RetryAfter: -1}, nil
	}
	t := lim.Interval().Microseconds()
	v, err := gcraScript.Run(ctx, s.c, []string{s.prefix + "{" + ns + ":" + key + "}:rl"}, t, burst, n).Result()
	if err != nil {
		return budget.Result{}, storeError(err)
	}
	return decodeGCRA(v, burst)
}

// decodeGCRA turns a GCRA script reply into a Result; it never panics.
func decodeGCRA(v any, burst int64) (budget.Result, error) {
	r := newReply(v, "rate", 4)
	const maxSpan = int64(budget.MaxLimitSpan / time.Microsecond)
	res := budget.Result{
		Allowed:    r.intIn(0, 0, 1) == 1,
		Remaining:  r.intIn(1, 0, burst),
		RetryAfter: time.Duration(r.intIn(2, 0, maxSpan)) * time.Microsecond,
		ResetAfter: time.Duration(r.intIn(3, 0, maxSpan)) * time.Microsecond,
	}
	if r.err != nil || len(r.v) != 4 {
		return budget.Result{}, errReply("rate")
	}
	return res, nil
}
