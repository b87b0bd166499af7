package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/talosgo/talos/gateway/otelredact"
	"github.com/talosgo/talos/gateway/telemetry"
)

func newTelemetry(t *testing.T, exp *tracetest.InMemoryExporter, r *otelredact.Redactor) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(t.Context(), telemetry.Config{ServiceName: "test", Version: "v0", SpanExporter: exp, Redactor: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel
}

func TestMiddlewareSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	red := otelredact.New(otelredact.Config{})
	secret := "sk-live-0123456789abcdef0123"
	red.AddSecret(secret)
	tel := newTelemetry(t, exp, red)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("leak", "key "+secret))
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	h := tel.Middleware(mux)

	req := httptest.NewRequest("GET", "/items/"+secret+"?token="+secret, nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || rec.Header().Get("X-Request-Id") != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("answer %d, X-Request-Id %q", rec.Code, rec.Header().Get("X-Request-Id"))
	}
	if req.Pattern != "GET /items/{id}" {
		t.Errorf("outer request pattern %q", req.Pattern)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boom", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/nowhere", nil))
	if err := tel.TracerProvider().ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	if s := spans[0]; s.Name != "GET /items/{id}" || s.Parent.SpanID().String() != "00f067aa0ba902b7" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("first span %q parent %s kind %v", s.Name, s.Parent.SpanID(), s.SpanKind)
	}
	for _, kv := range spans[0].Attributes {
		if strings.Contains(kv.Value.String(), secret) {
			t.Errorf("attribute %s carries the secret", kv.Key)
		}
	}
	if s := spans[1]; s.Name != "GET /boom" || s.Status.Code != codes.Error || s.Status.Description != "502" {
		t.Errorf("5xx span %q status %+v", s.Name, s.Status)
	}
	if s := spans[2]; s.Name != "unmatched" || s.Status.Code == codes.Error {
		t.Errorf("unmatched span %q status %+v", s.Name, s.Status)
	}
}

func TestMetricsHandler(t *testing.T) {
	tel := newTelemetry(t, tracetest.NewInMemoryExporter(), otelredact.New(otelredact.Config{}))
	c, err := tel.Meter("example.test/scope").Int64Counter("talos_test_calls")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 3, metricAttr("outcome", "allow"))
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.Contains(string(body), `talos_test_calls_total{otel_scope_name="example.test/scope"`) || !strings.Contains(string(body), `outcome="allow"`) {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, body)
	}
	var nilTel *telemetry.Telemetry
	if nilTel.Meter("x") != nil {
		t.Error("a nil Telemetry's meter is not nil")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	red := otelredact.New(otelredact.Config{})
	for name, cfg := range map[string]telemetry.Config{
		"no service name": {Redactor: red},
		"no redactor":     {ServiceName: "x"},
		"unknown kind":    {ServiceName: "x", Redactor: red, TraceExporter: "jaeger"},
		"otlp no URL":     {ServiceName: "x", Redactor: red, TraceExporter: telemetry.ExporterOTLP},
	} {
		if _, err := telemetry.New(t.Context(), cfg); !errors.Is(err, telemetry.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOTLPEndpointURL(t *testing.T) {
	for _, c := range []struct{ in, signal, want string }{
		{"http://127.0.0.1:4318", "traces", "http://127.0.0.1:4318/v1/traces"},
		{"http://127.0.0.1:4318/", "metrics", "http://127.0.0.1:4318/v1/metrics"},
		{"http://127.0.0.1:4318/v1/traces", "metrics", "http://127.0.0.1:4318/v1/metrics"},
		{"http://127.0.0.1:4318/v1/traces", "traces", "http://127.0.0.1:4318/v1/traces"},
		{"https://otel.example/prefix", "metrics", "https://otel.example/prefix/v1/metrics"},
	} {
		if got := telemetry.OTLPEndpoint(c.in, c.signal); got != c.want {
			t.Errorf("OTLPEndpoint(%q, %s) = %q, want %q", c.in, c.signal, got, c.want)
		}
	}
}
