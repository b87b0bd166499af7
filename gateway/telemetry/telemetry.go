// Package telemetry sets up a gateway's OpenTelemetry pipelines: a tracer
// provider whose exporter only ever receives spans redacted by an
// [otelredact.Redactor], a server-span middleware named after the matched
// route, and a metric pipeline read by a Prometheus handler (GET /metrics)
// and, when an OTLP endpoint is configured, pushed over OTLP/HTTP.
//
// The library packages record through the OTel metric API
// (talos.KernelConfig.Meter, audit.Config.Meter, ratchet.Instrument, which
// New calls); their attributes are bounded (surface, outcome, reason, code)
// and never carry a principal or a token.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/talosgo/talos/gateway/otelredact"
	"github.com/talosgo/talos/ratchet"
)

// Trace exporter kinds for [Config.TraceExporter].
const (
	// ExporterAuto exports over OTLP when Config.OTLPEndpoint is set and
	// nowhere otherwise. The empty string means the same.
	ExporterAuto = "auto"
	// ExporterOTLP exports over OTLP/HTTP to Config.OTLPEndpoint.
	ExporterOTLP = "otlp"
	// ExporterStdout writes span JSON to Config.Stdout.
	ExporterStdout = "stdout"
	// ExporterNone exports no spans (they are still created, so request
	// ids and trace context propagation work).
	ExporterNone = "none"
)

// ErrConfig is returned (wrapped) by [New] for an invalid Config.
var ErrConfig = errors.New("telemetry: invalid config")

// DefaultMetricsInterval is how often metrics are pushed over OTLP when
// Config.MetricsInterval is zero.
const DefaultMetricsInterval = 30 * time.Second

// Config configures [New].
type Config struct {
	// ServiceName is the service.name resource attribute (required).
	ServiceName string
	// Version is the service.version resource attribute.
	Version string
	// Region, when set, is the cloud.region attribute of the spans'
	// resource.
	Region string
	// OTLPEndpoint is an OTLP/HTTP collector's URL (a base URL such as
	// http://127.0.0.1:4318, or one naming a signal's path); metrics are
	// pushed there whenever it is set, spans when TraceExporter allows.
	OTLPEndpoint string
	// TraceExporter is one of the Exporter* kinds ("" is ExporterAuto).
	TraceExporter string
	// Stdout is where ExporterStdout writes (default os.Stdout).
	Stdout io.Writer
	// SpanExporter, when set, replaces the exporter TraceExporter names
	// (tests pass an in-memory one). It too receives redacted spans only.
	SpanExporter sdktrace.SpanExporter
	// Redactor scrubs every span before export (required: a gateway's
	// spans carry whatever handlers put on them).
	Redactor *otelredact.Redactor
	// TracerName is the instrumentation scope of the middleware's tracer
	// (default: this package's import path).
	TracerName string
	// MetricsInterval is the OTLP metric push interval
	// (default DefaultMetricsInterval).
	MetricsInterval time.Duration
}

// Telemetry holds the tracer and meter providers built by [New]. It is safe
// for concurrent use.
type Telemetry struct {
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer
	mp      *sdkmetric.MeterProvider
	metrics http.Handler
}

// New builds the tracer provider (the configured exporter, wrapped so that
// it only receives spans redacted by cfg.Redactor, behind a batch processor)
// and the meter provider (a Prometheus reader, plus an OTLP periodic reader
// when cfg.OTLPEndpoint is set), and instruments package ratchet. Call
// Shutdown (or the providers' own Shutdown) to flush.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, fmt.Errorf("%w: ServiceName is required", ErrConfig)
	}
	if cfg.Redactor == nil {
		return nil, fmt.Errorf("%w: Redactor is required", ErrConfig)
	}
	tp, err := newTracerProvider(ctx, cfg)
	if err != nil {
		return nil, err
	}
	mp, handler, err := newMeterProvider(ctx, cfg)
	if err != nil {
		tp.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	name := cfg.TracerName
	if name == "" {
		name = "github.com/talosgo/talos/gateway/telemetry"
	}
	return &Telemetry{tp: tp, tracer: tp.Tracer(name), mp: mp, metrics: handler}, nil
}

func newTracerProvider(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	kind := cfg.TraceExporter
	if kind == "" || kind == ExporterAuto {
		// Spans go to an OTLP collector when one is configured; the
		// stdout exporter only when asked for: on by default it drowned
		// the access log in span JSON.
		kind = ExporterNone
		if cfg.OTLPEndpoint != "" {
			kind = ExporterOTLP
		}
	}
	var exp sdktrace.SpanExporter
	switch {
	case cfg.SpanExporter != nil:
		exp = cfg.SpanExporter
	case kind == ExporterOTLP:
		if cfg.OTLPEndpoint == "" {
			return nil, fmt.Errorf("%w: the otlp trace exporter needs OTLPEndpoint", ErrConfig)
		}
		e, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(OTLPEndpoint(cfg.OTLPEndpoint, "traces")))
		if err != nil {
			return nil, err
		}
		exp = e
	case kind == ExporterStdout:
		w := cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
		e, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, err
		}
		exp = e
	case kind == ExporterNone:
	default:
		return nil, fmt.Errorf("%w: trace exporter must be auto, otlp, stdout or none", ErrConfig)
	}
	attrs := resourceAttrs(cfg)
	if cfg.Region != "" {
		attrs = append(attrs, attribute.String("cloud.region", cfg.Region))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(resource.NewSchemaless(attrs...))}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(otelredact.NewExporter(exp, cfg.Redactor)))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

func newMeterProvider(ctx context.Context, cfg Config) (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(resource.NewSchemaless(resourceAttrs(cfg)...)),
		sdkmetric.WithReader(prom),
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(OTLPEndpoint(cfg.OTLPEndpoint, "metrics")))
		if err != nil {
			return nil, nil, err
		}
		every := cfg.MetricsInterval
		if every <= 0 {
			every = DefaultMetricsInterval
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(every))))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	if err := ratchet.Instrument(mp.Meter("github.com/talosgo/talos/ratchet")); err != nil {
		mp.Shutdown(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

func resourceAttrs(cfg Config) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", cfg.Version),
	}
}

// Tracer returns the tracer the middleware starts server spans with.
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// TracerProvider returns the tracer provider (it exports redacted spans);
// install it as the global provider with otel.SetTracerProvider.
func (t *Telemetry) TracerProvider() *sdktrace.TracerProvider { return t.tp }

// MeterProvider returns the meter provider.
func (t *Telemetry) MeterProvider() *sdkmetric.MeterProvider { return t.mp }

// Meter returns the meter of one instrumentation scope (a library package's
// import path), or nil (no metrics) when t is nil.
func (t *Telemetry) Meter(scope string) metric.Meter {
	if t == nil {
		return nil
	}
	return t.mp.Meter(scope)
}

// MetricsHandler serves the metrics in the Prometheus text format (mount it
// at GET /metrics).
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// Shutdown flushes and stops the meter provider, then the tracer provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.mp.Shutdown(ctx), t.tp.Shutdown(ctx))
}

// OTLPEndpoint is the OTLP/HTTP URL of one signal ("traces" or "metrics")
// from a configured endpoint: a collector's base URL
// (http://127.0.0.1:4318, or one with a path prefix) gets the signal's
// default path /v1/<signal>, and a URL already naming a signal's path
// (…/v1/traces) is mapped to the sibling path. The exporters themselves use
// a URL's path as given, so a base URL alone would post to "/".
func OTLPEndpoint(configured, signal string) string {
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
