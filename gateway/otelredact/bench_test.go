package otelredact

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// benchSpan is a typical server span: route name, a dozen attributes, one
// event.
func benchSpan(b *testing.B) sdktrace.ReadOnlySpan {
	b.Helper()
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	_, span := tp.Tracer("bench").Start(context.Background(), "PUT /v1/config/{kind}/{name}")
	span.SetAttributes(
		attribute.String("http.request.method", "PUT"),
		attribute.String("url.scheme", "http"),
		attribute.String("user_agent.original", "curl/8.5.0"),
		attribute.Int64("http.request.body.size", 312),
		attribute.String("http.route", "PUT /v1/config/{kind}/{name}"),
		attribute.Int("http.response.status_code", 201),
		attribute.String("talos.subject", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
		attribute.String("talos.capability_hash", "7f0c1b8e5d2a4f6b9c3e1d0a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c"),
		attribute.String("talos.decision", "allow"),
		attribute.String("http.request.header.authorization", "Bearer abcdefghijklmnopqrstuvwxyz012345"),
	)
	span.AddEvent("budget.reserved", trace.WithAttributes(attribute.Int64("micro_usd", 1000)))
	span.End()
	return mem.GetSpans().Snapshots()[0]
}

// BenchmarkRedactSpan compares redacting one span with copying it (the
// SpanStub round trip the redaction is built on), in the same run.
func BenchmarkRedactSpan(b *testing.B) {
	s := benchSpan(b)
	r := New(Config{})
	r.AddSecret("talos_admin_0123456789abcdef")
	b.Run("redact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Span(s)
		}
	})
	b.Run("copy_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = tracetest.SpanStubFromReadOnlySpan(s).Snapshot()
		}
	})
}
