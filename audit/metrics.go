package audit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names a [Log] records when Config.Meter is set.
const (
	// MetricBatchSize is the number of events of each group commit (one
	// durable store write), by talos.result ("ok", "error").
	MetricBatchSize = "talos.audit.batch.size"
	// MetricCommitDuration is the latency of each group commit's store
	// write in seconds (an fsync for the file store), by talos.result.
	MetricCommitDuration = "talos.audit.commit.duration"
)

type logMetrics struct {
	batch    metric.Int64Histogram
	duration metric.Float64Histogram
	ok, fail metric.MeasurementOption
}

func newLogMetrics(m metric.Meter) (*logMetrics, error) {
	if m == nil {
		return nil, nil // no Meter: a nil *logMetrics records nothing
	}
	lm := &logMetrics{
		ok:   metric.WithAttributeSet(attribute.NewSet(attribute.String("talos.result", "ok"))),
		fail: metric.WithAttributeSet(attribute.NewSet(attribute.String("talos.result", "error"))),
	}
	var err error
	if lm.batch, err = m.Int64Histogram(MetricBatchSize,
		metric.WithDescription("Events per group commit"), metric.WithUnit("{event}"),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)); err != nil {
		return nil, err
	}
	if lm.duration, err = m.Float64Histogram(MetricCommitDuration,
		metric.WithDescription("Latency of one group commit's durable store write"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)); err != nil {
		return nil, err
	}
	return lm, nil
}

// now is a commit's start time (zero without metrics).
func (lm *logMetrics) now() time.Time {
	if lm == nil {
		return time.Time{}
	}
	return time.Now()
}

func (lm *logMetrics) commit(ctx context.Context, events int, began time.Time, err error) {
	if lm == nil {
		return
	}
	res := lm.ok
	if err != nil {
		res = lm.fail
	}
	lm.batch.Record(ctx, int64(events), res)
	lm.duration.Record(ctx, time.Since(began).Seconds(), res)
}
