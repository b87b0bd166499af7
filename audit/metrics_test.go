package audit_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
)

// batchMeter keeps every value recorded on its histograms.
type batchMeter struct {
	noop.Meter
	mu     sync.Mutex
	values map[string][]float64
}

type batchInt struct {
	noop.Int64Histogram
	m    *batchMeter
	name string
}

type batchFloat struct {
	noop.Float64Histogram
	m    *batchMeter
	name string
}

func (m *batchMeter) Int64Histogram(name string, _ ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	return batchInt{m: m, name: name}, nil
}

func (m *batchMeter) Float64Histogram(name string, _ ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return batchFloat{m: m, name: name}, nil
}

func (h batchInt) Record(_ context.Context, v int64, _ ...metric.RecordOption) {
	h.m.mu.Lock()
	h.m.values[h.name] = append(h.m.values[h.name], float64(v))
	h.m.mu.Unlock()
}

func (h batchFloat) Record(_ context.Context, v float64, _ ...metric.RecordOption) {
	h.m.mu.Lock()
	h.m.values[h.name] = append(h.m.values[h.name], v)
	h.m.mu.Unlock()
}

// TestLogMetrics: every group commit records its batch size and duration,
// and the batch sizes add up to the events appended.
func TestLogMetrics(t *testing.T) {
	ctx := context.Background()
	m := &batchMeter{values: map[string][]float64{}}
	signer, verifier := audittest.SignerVerifier(t)
	l, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier, Meter: m})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, richEvent(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	sizes, durs := m.values[audit.MetricBatchSize], m.values[audit.MetricCommitDuration]
	var sum float64
	for _, s := range sizes {
		if s < 1 {
			t.Errorf("batch of %v events", s)
		}
		sum += s
	}
	if sum != n || len(durs) != len(sizes) || len(sizes) == 0 {
		t.Fatalf("%d batches adding up to %v events and %d durations, want %d events", len(sizes), sum, len(durs), n)
	}
	t.Logf("%d events in %d group commits", n, len(sizes))
}
