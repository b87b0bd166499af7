package telemetry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos/gateway/otelredact"
	"github.com/talosgo/talos/gateway/telemetry"
)

func metricAttr(k, v string) metric.AddOption {
	return metric.WithAttributes(attribute.String(k, v))
}

// A gateway's telemetry: spans per route through the redacting exporter
// (none here: no OTLP endpoint), and GET /metrics.
func Example() {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{
		ServiceName: "my-gateway",
		Version:     "v1.0.0",
		Redactor:    otelredact.New(otelredact.Config{}),
	})
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	mux.Handle("GET /metrics", tel.MetricsHandler())
	srv := httptest.NewServer(tel.Middleware(mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/hello")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, len(resp.Header.Get("X-Request-Id")))
	// Output: 200 32
}
