package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/ratchet"
)

// telemetry holds the server's metric pipeline: an OTel SDK MeterProvider
// read by a Prometheus exporter (served at GET /metrics) and, when an OTLP
// endpoint is configured, pushed over OTLP/HTTP as well. The library
// packages record through the OTel metric API (talos.KernelConfig.Meter,
// audit.Config.Meter, ratchet.Instrument); their attributes are bounded
// (surface, outcome, reason, code) and never carry a principal or a token.
type telemetry struct {
	mp      *sdkmetric.MeterProvider
	handler http.Handler // GET /metrics
}

// setupMetrics builds the MeterProvider; its Shutdown (which flushes the
// OTLP exporter) is a shutdown hook.
func (s *Server) setupMetrics(ctx context.Context) error {
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return err
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", "talos-server"),
		attribute.String("service.version", talos.Version),
	}
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(resource.NewSchemaless(attrs...)),
		sdkmetric.WithReader(prom),
	}
	if s.cfg.OTLPEndpoint != "" {
		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(otlpEndpoint(s.cfg.OTLPEndpoint, "metrics")))
		if err != nil {
			return err
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(30*time.Second))))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	if err := ratchet.Instrument(mp.Meter("github.com/talosgo/talos/ratchet")); err != nil {
		return err
	}
	s.metrics = &telemetry{
		mp:      mp,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}
	s.OnShutdown("metrics", mp.Shutdown)
	return nil
}

// otlpEndpoint is the OTLP/HTTP URL of one signal ("traces" or "metrics")
// from the configured endpoint: a collector's base URL
// (http://127.0.0.1:4318, or one with a path prefix) gets the signal's
// default path /v1/<signal>, and a URL already naming a signal's path
// (…/v1/traces) is mapped to the sibling path. The exporters themselves use
// a URL's path as given, so a base URL alone would post to "/".
func otlpEndpoint(configured, signal string) string {
	u, err := url.Parse(configured)
	if err != nil {
		return configured // the exporter reports it
	}
	p := strings.TrimSuffix(u.Path, "/")
	for _, s := range []string{"/v1/traces", "/v1/metrics", "/v1/logs"} {
		p = strings.TrimSuffix(p, s)
	}
	u.Path = p + "/v1/" + signal
	return u.String()
}

// meter returns the meter for one library package's instrumentation
// scope, or nil (no metrics) before setupMetrics.
func (s *Server) meter(scope string) metric.Meter {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.mp.Meter(scope)
}
