package ratchet_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/talosgo/talos/ratchet"
)

// countingMeter keeps the attribute sets of every Add on its counters.
type countingMeter struct {
	noop.Meter
	mu   sync.Mutex
	adds map[string][]attribute.Set
}

type countingCounter struct {
	noop.Int64Counter
	m    *countingMeter
	name string
}

func (m *countingMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return countingCounter{m: m, name: name}, nil
}

func (c countingCounter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for range v {
		c.m.adds[c.name] = append(c.m.adds[c.name], metric.NewAddConfig(opts).Attributes())
	}
}

// TestDecryptFailureMetric: a tampered message counts one failure with its
// contract code; a good message counts nothing; Instrument(nil) stops.
func TestDecryptFailureMetric(t *testing.T) {
	m := &countingMeter{adds: map[string][]attribute.Set{}}
	if err := ratchet.Instrument(m); err != nil {
		t.Fatal(err)
	}
	defer ratchet.Instrument(nil)
	alice, bob := pair(t)
	wire, err := alice.Encrypt([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), wire...)
	bad[len(bad)-3] ^= 1
	if _, err := bob.Decrypt(bad); err == nil {
		t.Fatal("tampered message decrypted")
	}
	if _, err := bob.Decrypt(wire); err != nil {
		t.Fatal(err)
	}
	got := m.adds[ratchet.MetricDecryptFailures]
	if len(got) != 1 {
		t.Fatalf("%d failures recorded, want 1", len(got))
	}
	if v, ok := got[0].Value("talos.code"); !ok || v.AsString() == "" {
		t.Fatalf("failure recorded without a code: %v", got[0].ToSlice())
	}
	ratchet.Instrument(nil)
	bob.Decrypt(bad)
	if len(m.adds[ratchet.MetricDecryptFailures]) != 1 {
		t.Fatal("counted after Instrument(nil)")
	}
}
