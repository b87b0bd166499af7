package main

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/gateway/otelredact"
)

const tracerName = "github.com/talosgo/talos/examples/server"

// setupTracing builds the tracer provider: the configured exporter, wrapped
// so that it only receives spans redacted by s.redactor, behind a batch
// processor. The provider's Shutdown (which flushes) is a shutdown hook.
func (s *Server) setupTracing(ctx context.Context) error {
	var exp sdktrace.SpanExporter
	kind := s.cfg.TraceExporter
	if kind == "auto" {
		// Spans go to an OTLP collector when one is configured; the
		// stdout exporter only when asked for (-trace-exporter stdout): on
		// by default it drowned the access log in span JSON.
		kind = "none"
		if s.cfg.OTLPEndpoint != "" {
			kind = "otlp"
		}
	}
	switch {
	case s.cfg.spanExporter != nil:
		exp = s.cfg.spanExporter
	case kind == "otlp":
		e, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpEndpoint(s.cfg.OTLPEndpoint, "traces")))
		if err != nil {
			return err
		}
		exp = e
	case kind == "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(s.cfg.stdout))
		if err != nil {
			return err
		}
		exp = e
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", "talos-server"),
		attribute.String("service.version", talos.Version),
	}
	if s.cfg.Region != "" {
		attrs = append(attrs, attribute.String("cloud.region", s.cfg.Region))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(resource.NewSchemaless(attrs...))}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(otelredact.NewExporter(exp, s.redactor)))
	}
	s.tp = sdktrace.NewTracerProvider(opts...)
	s.tracer = s.tp.Tracer(tracerName)
	s.OnShutdown("trace exporter", s.tp.Shutdown)
	return nil
}

// propagator reads W3C traceparent/tracestate from incoming requests.
var propagator = propagation.TraceContext{}

// traced wraps next in a server span per request. The span is named after
// the matched route pattern (never the raw path or query, which can carry
// tokens); it records the method, route, status and a few safe headers.
// Whatever handlers add to the span passes the redacting exporter.
func (s *Server) traced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.scheme", scheme(r)),
				attribute.String("user_agent.original", r.UserAgent()),
				attribute.Int64("http.request.body.size", r.ContentLength),
			))
		defer span.End()
		// The trace id is the request id: clients quote it, the traces and
		// the error body's request_id carry it.
		w.Header().Set("X-Request-Id", span.SpanContext().TraceID().String())
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		r2 := r.WithContext(ctx)
		next.ServeHTTP(rec, r2)
		r.Pattern = r2.Pattern // for the access log around us
		route := r2.Pattern
		if route == "" {
			route = "unmatched"
		}
		span.SetName(route)
		span.SetAttributes(
			attribute.String("http.route", route),
			attribute.Int("http.response.status_code", rec.status),
		)
		if rec.status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(rec.status))
		}
	})
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
