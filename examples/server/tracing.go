package main

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/gateway/telemetry"
)

// setupTelemetry builds the tracer provider (the configured exporter behind
// the redacting exporter of s.redactor) and the metric pipeline (GET
// /metrics, OTLP when an endpoint is set) with gateway/telemetry. The
// providers' Shutdown (which flushes) are shutdown hooks.
func (s *Server) setupTelemetry(ctx context.Context) error {
	tel, err := telemetry.New(ctx, telemetry.Config{
		ServiceName:   "talos-server",
		Version:       talos.Version,
		Region:        s.cfg.Region,
		OTLPEndpoint:  s.cfg.OTLPEndpoint,
		TraceExporter: s.cfg.TraceExporter,
		Stdout:        s.cfg.stdout,
		SpanExporter:  s.cfg.spanExporter,
		Redactor:      s.redactor,
		TracerName:    "github.com/talosgo/talos/examples/server",
	})
	if err != nil {
		return err
	}
	s.tel, s.tracer = tel, tel.Tracer()
	s.OnShutdown("trace exporter", tel.TracerProvider().Shutdown)
	s.OnShutdown("metrics", tel.MeterProvider().Shutdown)
	return nil
}

// meter returns the meter for one library package's instrumentation
// scope, or nil (no metrics) before setupTelemetry.
func (s *Server) meter(scope string) metric.Meter { return s.kernelMeter(scope, s.tel.Meter(scope)) }
