package stats

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/talosgo/talos"
)

// Meter returns a metric.Meter that forwards everything to inner (nil: a
// no-op meter) and also feeds r with the Kernel's measurements: every
// talos.decisions count (surface, outcome, reason, code), every
// talos.call.duration and talos.authorize.duration sample, every
// talos.ratelimit.denials count and every talos.budget.reservations count
// with result "denied". Give it to talos.KernelConfig.Meter (and to every
// other Kernel of the process); other instruments pass through untouched.
func (r *Recorder) Meter(inner metric.Meter) metric.Meter {
	if inner == nil {
		inner = noop.NewMeterProvider().Meter("github.com/talosgo/talos")
	}
	return &teeMeter{Meter: inner, r: r}
}

type teeMeter struct {
	metric.Meter
	r *Recorder
}

func (m *teeMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	if err != nil {
		return nil, err
	}
	switch name {
	case talos.MetricDecisions, talos.MetricRateLimitDenials, talos.MetricBudgetReservations:
		return &teeCounter{Int64Counter: c, r: m.r, name: name}, nil
	}
	return c, nil
}

func (m *teeMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	h, err := m.Meter.Float64Histogram(name, opts...)
	if err != nil {
		return nil, err
	}
	switch name {
	case talos.MetricCallDuration:
		return &teeHistogram{Float64Histogram: h, r: m.r, kind: LatencyCall}, nil
	case talos.MetricAuthorizeDuration:
		return &teeHistogram{Float64Histogram: h, r: m.r, kind: LatencyAuthorize}, nil
	}
	return h, nil
}

type teeCounter struct {
	metric.Int64Counter
	r    *Recorder
	name string
}

func str(s attribute.Set, key string) string {
	v, _ := s.Value(attribute.Key(key))
	return v.AsString()
}

func (c *teeCounter) Add(ctx context.Context, incr int64, opts ...metric.AddOption) {
	c.Int64Counter.Add(ctx, incr, opts...)
	if incr <= 0 {
		return
	}
	attrs := metric.NewAddConfig(opts).Attributes()
	for range min(incr, 1<<10) {
		switch c.name {
		case talos.MetricDecisions:
			outcome := OutcomeError
			switch str(attrs, "talos.outcome") {
			case "allowed":
				outcome = OutcomeSuccess
			case "denied":
				outcome = OutcomeDenied
			}
			// The capability decision's reason, unless it admitted the
			// call and a later stage refused it (RATE_LIMITED,
			// BUDGET_EXCEEDED, INTERNAL): then that stage's code.
			reason := str(attrs, "talos.reason")
			if code := str(attrs, "talos.code"); code != "" && (reason == "" || reason == "ALLOWED") {
				reason = code
			}
			c.r.RecordDecision(Decision{Surface: str(attrs, "talos.surface"), Outcome: outcome, Reason: reason})
		case talos.MetricRateLimitDenials:
			c.r.RecordRateLimitDenial(time.Time{})
		case talos.MetricBudgetReservations:
			if str(attrs, "talos.result") == "denied" {
				c.r.RecordBudgetDenial(time.Time{})
			}
		}
	}
}

type teeHistogram struct {
	metric.Float64Histogram
	r    *Recorder
	kind string
}

func (h *teeHistogram) Record(ctx context.Context, seconds float64, opts ...metric.RecordOption) {
	h.Float64Histogram.Record(ctx, seconds, opts...)
	if seconds >= 0 && seconds < 1e6 {
		h.r.RecordLatency(h.kind, time.Time{}, time.Duration(seconds*float64(time.Second)))
	}
}
