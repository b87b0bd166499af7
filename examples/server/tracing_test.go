package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func rnd(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// exported renders everything the exporter received.
func exported(t *testing.T, spans tracetest.SpanStubs) string {
	t.Helper()
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "name=%s status=%s\n", s.Name, s.Status.Description)
		j, _ := json.Marshal(s.Attributes)
		b.Write(j)
		for _, e := range s.Events {
			j, _ := json.Marshal(e.Attributes)
			fmt.Fprintf(&b, "\nevent=%s %s", e.Name, j)
		}
		for _, l := range s.Links {
			j, _ := json.Marshal(l.Attributes)
			fmt.Fprintf(&b, "\nlink %s", j)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestTracingRedactsSecrets sends requests carrying secrets in every place a
// request can carry them, through a handler that (badly) records them on its
// span, and proves none reaches the exporter.
func TestTracingRedactsSecrets(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	bearer := rnd(t, 24)
	attSig := rnd(t, 64)
	attNonce := rnd(t, 16)
	capToken := `{"version":"1.0","issuer":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","nonce":"` + rnd(t, 16) + `","signature":"` + rnd(t, 64) + `"}`
	framePayload := rnd(t, 300)
	secretValue := "s3cr3t-" + rnd(t, 9)
	if err := ts.secrets.Put(t.Context(), "test/api-key", []byte(secretValue)); err != nil {
		t.Fatal(err)
	}
	secrets := []string{bearer, attSig, attNonce, capToken, framePayload, secretValue, ts.cred}

	ts.mux.HandleFunc("POST /test/leaky/{token}", func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		body, _ := io.ReadAll(r.Body)
		v, err := ts.secrets.Get(r.Context(), "test/api-key")
		if err != nil {
			t.Error(err)
		}
		span.SetAttributes(
			attribute.String("http.request.header.authorization", r.Header.Get("Authorization")),
			attribute.String("http.request.header.x-talos-signature", r.Header.Get("X-Talos-Signature")),
			attribute.String("http.request.header.x-talos-nonce", r.Header.Get("X-Talos-Nonce")),
			attribute.String("talos.capability", r.Header.Get("X-Talos-Capability")),
			attribute.String("a2a.frame.payload", string(body)),
			attribute.String("url.full", r.URL.String()),
			attribute.String("debug.headers", fmt.Sprint(r.Header)),
			attribute.String("upstream.api_key", string(v)),
			attribute.String("token.path", r.PathValue("token")),
		)
		span.AddEvent("received frame "+string(body), trace.WithAttributes(attribute.String("note", "admin used "+r.Header.Get("Authorization"))))
		span.RecordError(errors.New("verify failed for capability " + r.Header.Get("X-Talos-Capability")))
		span.SetStatus(codes.Error, "leaked "+string(v))
		w.WriteHeader(http.StatusAccepted)
	})

	send := func(path string, body []byte) {
		req, _ := http.NewRequest("POST", "http://talos.test"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("X-Talos-Signature", attSig)
		req.Header.Set("X-Talos-Nonce", attNonce)
		req.Header.Set("X-Talos-Capability", capToken)
		req.Header.Set("User-Agent", "talos-test/1.0")
		ts.Handler().ServeHTTP(httptestRecorder(), req)
	}
	send("/test/leaky/"+bearer+"?token="+attSig+"&cap="+bearer, []byte(framePayload))
	// The admin credential, presented on a real route.
	ts.do(t, "GET", "/v1/config/budget/team-a", ts.cred, nil)
	ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA))

	if err := ts.tel.TracerProvider().ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := ts.spans.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want 3", len(spans))
	}
	out := exported(t, spans)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %.20q... reached the exporter:\n%s", s, out)
		}
	}
	// The spans remain useful: route names, methods, status codes, user agent.
	for _, want := range []string{"name=POST /test/leaky/{token}", "name=PUT /v1/config/{kind}/{name}", `"talos-test/1.0"`, `"Value":201`, `"Value":202`} {
		if !strings.Contains(out, want) {
			t.Errorf("exported spans lack %s:\n%s", want, out)
		}
	}
}

// TestTracingPropagatesTraceparent checks that an incoming W3C trace context
// becomes the parent of the server span, and that the error body names the
// trace as its request_id.
func TestTracingPropagatesTraceparent(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	req, _ := http.NewRequest("GET", "http://talos.test/nope", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptestRecorder()
	ts.Handler().ServeHTTP(rec, req)
	var e errBody
	decode(t, rec.Result(), &e)
	if rid := rec.Header().Get("X-Request-Id"); rid != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("X-Request-Id %q", rid)
	}
	if e.RequestID != "4bf92f3577b34da6a3ce929d0e0e4736" || e.Code != "NOT_FOUND" {
		t.Fatalf("error body %+v", e)
	}
	ts.tel.TracerProvider().ForceFlush(context.Background())
	spans := ts.spans.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" || spans[0].Name != "/" {
		t.Fatalf("spans %+v", spans)
	}
}

// TestOTLPExportIsRedacted runs the real OTLP/HTTP exporter against a local
// collector and checks the bytes on the wire: no secret, and the span is there.
func TestOTLPExportIsRedacted(t *testing.T) {
	var mu sync.Mutex
	var wire bytes.Buffer
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		wire.Write(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	cfg := testConfig(t)
	cfg.TraceExporter = "otlp"
	cfg.OTLPEndpoint = collector.URL
	cfg.stdout = &syncBuffer{}
	s, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cred := parseCredential(cfg.stdout.(*syncBuffer).String())
	bearer := rnd(t, 32)
	s.mux.HandleFunc("GET /test/echo", func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(
			attribute.String("http.request.header.authorization", r.Header.Get("Authorization")),
			attribute.String("echo", "got "+r.Header.Get("Authorization")))
	})
	for _, auth := range []string{bearer, cred} {
		req, _ := http.NewRequest("GET", "http://talos.test/test/echo", nil)
		req.Header.Set("Authorization", "Bearer "+auth)
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	if err := s.Close(context.Background()); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Contains(wire.Bytes(), []byte("GET /test/echo")) {
		t.Fatalf("the collector received no span (%d bytes)", wire.Len())
	}
	for _, secret := range []string{bearer, cred} {
		if bytes.Contains(wire.Bytes(), []byte(secret)) {
			t.Fatalf("a secret crossed the wire to the collector")
		}
	}
}
