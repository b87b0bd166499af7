package telemetry

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator reads W3C traceparent/tracestate from incoming requests.
var propagator = propagation.TraceContext{}

// Middleware wraps next in a server span per request, the child of an
// incoming W3C trace context. The span is named after the matched route
// pattern (never the raw path or query, which can carry tokens; "unmatched"
// when no pattern matched); it records the method, route, status and a few
// safe headers, and an error status for 5xx answers. Whatever handlers add
// to the span passes the redacting exporter. The trace id is the request
// id: it is set as the X-Request-Id response header, and the matched pattern
// is copied back to the outer request for an access log around this one.
func (t *Telemetry) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.scheme", scheme(r)),
				attribute.String("user_agent.original", r.UserAgent()),
				attribute.Int64("http.request.body.size", r.ContentLength),
			))
		defer span.End()
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
