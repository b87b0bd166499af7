package talos

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos/contracts"
)

// Metric names the Kernel records (OpenTelemetry semantic style; units in
// UCUM). Attributes are bounded: the surface (the call's SurfaceID, one per
// route), the outcome ("allowed", "denied" or "error"), the decision reason
// (capability.ReasonCode) and the contract error code. Principals, tokens,
// capability hashes and request bodies are never attributes.
const (
	// MetricDecisions counts calls by surface, outcome, reason and code.
	MetricDecisions = "talos.decisions"
	// MetricAuthorizeDuration is the authorize stage's latency in seconds,
	// by surface (a Decision handed in by a Middleware is not timed again).
	MetricAuthorizeDuration = "talos.authorize.duration"
	// MetricCallDuration is the whole pipeline's latency in seconds, audit
	// append included, by surface and outcome.
	MetricCallDuration = "talos.call.duration"
	// MetricRateLimitDenials counts calls refused by the rate limiter, by
	// rate surface.
	MetricRateLimitDenials = "talos.ratelimit.denials"
	// MetricBudgetReservations counts budget reservations by surface and
	// result ("reserved", "denied", "error").
	MetricBudgetReservations = "talos.budget.reservations"
	// MetricAuditAppends counts the Kernel's audit appends by result
	// ("ok", "error").
	MetricAuditAppends = "talos.audit.appends"
)

// kernelMetrics are the Kernel's instruments. Without a Meter the Kernel
// has none (a nil *kernelMetrics): every method is then a no-op that takes
// no clock reading and builds no attribute set, so the decision path pays
// nothing for metrics nobody reads.
type kernelMetrics struct {
	decisions    metric.Int64Counter
	authorize    metric.Float64Histogram
	call         metric.Float64Histogram
	rateDenied   metric.Int64Counter
	reservations metric.Int64Counter
	appends      metric.Int64Counter

	sets sync.Map // attrKey → metric.MeasurementOption (attribute sets are built once)
}

// attrKey names one attribute set: the kind of set (an index into
// attrKinds) and its values.
type attrKey struct {
	kind       attrKind
	a, b, c, d string
}

type attrKind uint8

const (
	kindDecision attrKind = iota
	kindSurface
	kindSurfaceOutcome
	kindSurfaceResult
	kindResult
)

// attrKinds are the attribute keys of each kind of set.
var attrKinds = [...][4]string{
	kindDecision:       {"talos.surface", "talos.outcome", "talos.reason", "talos.code"},
	kindSurface:        {"talos.surface"},
	kindSurfaceOutcome: {"talos.surface", "talos.outcome"},
	kindSurfaceResult:  {"talos.surface", "talos.result"},
	kindResult:         {"talos.result"},
}

// latencyBuckets (seconds) resolve the microsecond-scale decisions of the
// Kernel as well as calls that wait for an upstream.
var latencyBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

func newKernelMetrics(m metric.Meter) (*kernelMetrics, error) {
	if m == nil {
		return nil, nil
	}
	km := new(kernelMetrics)
	var err error
	if km.decisions, err = m.Int64Counter(MetricDecisions,
		metric.WithDescription("Kernel calls by surface, outcome, reason and error code"), metric.WithUnit("{call}")); err != nil {
		return nil, err
	}
	if km.authorize, err = m.Float64Histogram(MetricAuthorizeDuration,
		metric.WithDescription("Latency of the authorize stage"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if km.call, err = m.Float64Histogram(MetricCallDuration,
		metric.WithDescription("Latency of the whole Kernel pipeline, audit append included"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if km.rateDenied, err = m.Int64Counter(MetricRateLimitDenials,
		metric.WithDescription("Calls refused by the rate limiter"), metric.WithUnit("{call}")); err != nil {
		return nil, err
	}
	if km.reservations, err = m.Int64Counter(MetricBudgetReservations,
		metric.WithDescription("Budget reservations by result"), metric.WithUnit("{reservation}")); err != nil {
		return nil, err
	}
	if km.appends, err = m.Int64Counter(MetricAuditAppends,
		metric.WithDescription("Audit events appended by the Kernel, by result"), metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	return km, nil
}

// attrs returns the measurement option for the attribute set k, building
// each distinct set once.
func (km *kernelMetrics) attrs(k attrKey) metric.MeasurementOption {
	if o, ok := km.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	vals := [4]string{k.a, k.b, k.c, k.d}
	kv := make([]attribute.KeyValue, 0, 4)
	for i, key := range attrKinds[k.kind] {
		if key != "" {
			kv = append(kv, attribute.String(key, vals[i]))
		}
	}
	o, _ := km.sets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kv...)))
	return o.(metric.MeasurementOption)
}

// maxMetricString bounds attribute values (longer ones are cut).
const maxMetricString = 128

func clip(s string) string {
	if len(s) > maxMetricString {
		return s[:maxMetricString]
	}
	return s
}

// now is the start time of a measured stage (zero without metrics).
func (km *kernelMetrics) now() time.Time {
	if km == nil {
		return time.Time{}
	}
	return time.Now()
}

// authorized notes the authorize stage's latency since began.
func (km *kernelMetrics) authorized(ctx context.Context, surface string, began time.Time) {
	if km == nil {
		return
	}
	km.authorize.Record(ctx, time.Since(began).Seconds(), km.attrs(attrKey{kind: kindSurface, a: clip(surface)}))
}

// rateLimited notes a call the rate limiter refused.
func (km *kernelMetrics) rateLimited(ctx context.Context, surface string) {
	if km == nil {
		return
	}
	km.rateDenied.Add(ctx, 1, km.attrs(attrKey{kind: kindSurface, a: clip(surface)}))
}

// reserved notes a budget reservation's result.
func (km *kernelMetrics) reserved(ctx context.Context, surface string, allowed bool, err error) {
	if km == nil {
		return
	}
	result := "reserved"
	switch {
	case err != nil:
		result = "error"
	case !allowed:
		result = "denied"
	}
	km.reservations.Add(ctx, 1, km.attrs(attrKey{kind: kindSurfaceResult, a: clip(surface), b: result}))
}

// record notes one finished call.
func (km *kernelMetrics) record(ctx context.Context, surface string, out *Outcome, began time.Time, auditOK bool) {
	if km == nil {
		return
	}
	surface = clip(surface)
	outcome := "denied"
	switch {
	case out.Allowed && out.Code == "":
		outcome = "allowed"
	case out.Code == contracts.CodeInternal || out.Status >= 500:
		outcome = "error"
	}
	km.decisions.Add(ctx, 1, km.attrs(attrKey{kindDecision, surface, outcome, clip(string(out.Decision.Reason)), clip(string(out.Code))}))
	km.call.Record(ctx, time.Since(began).Seconds(), km.attrs(attrKey{kind: kindSurfaceOutcome, a: surface, b: outcome}))
	result := "ok"
	if !auditOK {
		result = "error"
	}
	km.appends.Add(ctx, 1, km.attrs(attrKey{kind: kindResult, a: result}))
}
