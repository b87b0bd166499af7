package ratchet

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos/contracts"
)

// MetricDecryptFailures counts messages that failed to decrypt (Session,
// Record and Group), by contract error code (talos.code): a forged,
// replayed or corrupted message, or one that skips too far. Nothing about
// the message, the peer or the session is recorded.
const MetricDecryptFailures = "talos.ratchet.decrypt.failures"

var decryptFailures atomic.Pointer[metric.Int64Counter]

// Instrument makes the package record MetricDecryptFailures with m, e.g.
// provider.Meter("github.com/talosgo/talos/ratchet") of an OTel SDK
// MeterProvider. Sessions have no configuration object of their own (they
// are created by Initiate, Accept, Load and Group alike), so the counter is
// the package's; Instrument(nil) stops recording. Until it is called
// nothing is recorded.
func Instrument(m metric.Meter) error {
	if m == nil {
		decryptFailures.Store(nil)
		return nil
	}
	c, err := m.Int64Counter(MetricDecryptFailures,
		metric.WithDescription("Messages that failed to decrypt, by error code"), metric.WithUnit("{message}"))
	if err != nil {
		return err
	}
	decryptFailures.Store(&c)
	return nil
}

// countFailure records a failed decryption and returns err.
func countFailure(err error) error {
	if c := decryptFailures.Load(); c != nil && err != nil {
		(*c).Add(context.Background(), 1, metric.WithAttributes(attribute.String("talos.code", string(contracts.CodeOf(err)))))
	}
	return err
}
