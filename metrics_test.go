package talos_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
)

// recMeter is a metric.Meter that keeps every measurement of the counters
// and histograms the Kernel creates (the OTel SDK is not a dependency of
// this module; examples/server tests the exporters).
type recMeter struct {
	noop.Meter
	mu   sync.Mutex
	seen []measurement
}

type measurement struct {
	name  string
	value float64
	attrs attribute.Set
}

func (m *recMeter) add(name string, v float64, opts []metric.MeasurementOption) {
	ao := make([]metric.AddOption, len(opts))
	for i, o := range opts {
		ao[i] = o
	}
	attrs := metric.NewAddConfig(ao).Attributes()
	m.mu.Lock()
	m.seen = append(m.seen, measurement{name, v, attrs})
	m.mu.Unlock()
}

func (m *recMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return recCounter{m: m, name: name}, nil
}

func (m *recMeter) Float64Histogram(name string, _ ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return recHistogram{m: m, name: name}, nil
}

type recCounter struct {
	noop.Int64Counter
	m    *recMeter
	name string
}

func (c recCounter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	mo := make([]metric.MeasurementOption, 0, len(opts))
	for _, o := range opts {
		mo = append(mo, o.(metric.MeasurementOption))
	}
	c.m.add(c.name, float64(v), mo)
}

type recHistogram struct {
	noop.Float64Histogram
	m    *recMeter
	name string
}

func (h recHistogram) Record(_ context.Context, v float64, opts ...metric.RecordOption) {
	mo := make([]metric.MeasurementOption, 0, len(opts))
	for _, o := range opts {
		mo = append(mo, o.(metric.MeasurementOption))
	}
	h.m.add(h.name, v, mo)
}

// count sums the measurements of name whose attributes include every
// key=value in want.
func (m *recMeter) count(name string, want ...attribute.KeyValue) (n float64, samples int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.seen {
		if s.name != name {
			continue
		}
		ok := true
		for _, kv := range want {
			if v, found := s.attrs.Value(kv.Key); !found || v != kv.Value {
				ok = false
			}
		}
		if ok {
			n += s.value
			samples++
		}
	}
	return n, samples
}

// TestKernelMetrics runs an allowed, a denied, an over-budget and a
// rate-limited call and checks each metric and its attributes, and that no
// attribute carries the principal or the token.
func TestKernelMetrics(t *testing.T) {
	ctx := context.Background()
	m := &recMeter{}
	f := newKernelFixture(t, budget.PerMinute(2), func(c *talos.KernelConfig) { c.Meter = m })
	h := func(context.Context, capability.Decision) (int64, int, error) { return 400, http.StatusOK, nil }
	for _, c := range []struct {
		tool   string
		amount int64
	}{{"search", 600}, {"shell", 1}, {"search", 700}, {"search", 1}} {
		if _, err := f.kernel.Do(ctx, f.call(c.tool, c.amount), h); err != nil {
			t.Fatal(err)
		}
	}
	surface := attribute.String("talos.surface", "tool.call")
	for _, tc := range []struct {
		name string
		want []attribute.KeyValue
		n    float64
	}{
		{talos.MetricDecisions, []attribute.KeyValue{surface}, 4},
		{talos.MetricDecisions, []attribute.KeyValue{surface, attribute.String("talos.outcome", "allowed"), attribute.String("talos.reason", "ALLOWED")}, 1},
		{talos.MetricDecisions, []attribute.KeyValue{attribute.String("talos.outcome", "denied"), attribute.String("talos.reason", "SCOPE_MISMATCH")}, 1},
		{talos.MetricDecisions, []attribute.KeyValue{attribute.String("talos.code", "BUDGET_EXCEEDED")}, 1},
		{talos.MetricDecisions, []attribute.KeyValue{attribute.String("talos.code", "RATE_LIMITED")}, 1},
		{talos.MetricRateLimitDenials, []attribute.KeyValue{surface}, 1},
		{talos.MetricBudgetReservations, []attribute.KeyValue{surface, attribute.String("talos.result", "reserved")}, 1},
		{talos.MetricBudgetReservations, []attribute.KeyValue{surface, attribute.String("talos.result", "denied")}, 1},
		{talos.MetricAuditAppends, []attribute.KeyValue{attribute.String("talos.result", "ok")}, 4},
	} {
		if n, _ := m.count(tc.name, tc.want...); n != tc.n {
			t.Errorf("%s %v = %v, want %v", tc.name, tc.want, n, tc.n)
		}
	}
	if _, samples := m.count(talos.MetricAuthorizeDuration, surface); samples != 4 {
		t.Errorf("authorize duration: %d samples, want 4", samples)
	}
	if _, samples := m.count(talos.MetricCallDuration, surface); samples != 4 {
		t.Errorf("call duration: %d samples, want 4", samples)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.seen {
		for _, kv := range s.attrs.ToSlice() {
			v := kv.Value.String()
			if strings.Contains(v, "did:key") || strings.Contains(v, f.token[:16]) {
				t.Errorf("%s attribute %s=%q carries an identity or a token", s.name, kv.Key, v)
			}
		}
	}
}
