package otelredact

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func randB64(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// dump serializes everything an exporter could see of the spans.
func dump(t *testing.T, spans tracetest.SpanStubs) string {
	t.Helper()
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s|%s|", s.Name, s.Status.Description)
		j, err := json.Marshal(s.Attributes)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		for _, e := range s.Events {
			j, _ := json.Marshal(e.Attributes)
			fmt.Fprintf(&b, "|%s|%s", e.Name, j)
		}
		for _, l := range s.Links {
			j, _ := json.Marshal(l.Attributes)
			fmt.Fprintf(&b, "|%s", j)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestExporterRedactsEverywhere(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	r := New(Config{})
	known := "talos_admin_" + randB64(t, 8)[:10] // short enough to escape the entropy scan
	r.AddSecret(known)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(NewExporter(mem, r)))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")

	bearer := randB64(t, 24)
	sig := randB64(t, 64)
	nonce := randB64(t, 16) // 22 chars: below the entropy scan, caught by key
	capTok := `{"version":"1.0","issuer":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","nonce":"` + nonce + `","signature":"` + sig + `"}`
	frame := randB64(t, 200)
	dsnPass := "pw-" + randB64(t, 6)
	secrets := []string{bearer, sig, nonce, frame, known, dsnPass}

	_, span := tr.Start(context.Background(), "GET /v1/frames?token="+bearer,
		trace.WithLinks(trace.Link{Attributes: []attribute.KeyValue{attribute.String("x-talos-signature", sig)}}))
	span.SetAttributes(
		attribute.String("http.request.header.authorization", "Bearer "+bearer),
		attribute.String("http.request.header.x-talos-signature", sig),
		attribute.String("http.request.header.x-talos-nonce", nonce),
		attribute.StringSlice("http.request.header.x-talos-key-id", []string{nonce}),
		attribute.String("talos.capability", capTok),
		attribute.String("a2a.frame.ciphertext_b64u", frame),
		attribute.String("note", "got frame "+frame+" and "+known),
		attribute.String("db.dsn", "postgres://talos:"+dsnPass+"@db:5432/x"),
		attribute.String("db.statement", "connect postgres://talos:"+dsnPass+"@db:5432/x"),
		attribute.ByteSlice("raw", []byte(bearer)),
		attribute.Map("nested", attribute.String("secret", nonce), attribute.String("ok", "fine")),
		attribute.Slice("list", attribute.StringValue("Authorization: Bearer "+bearer)),
		attribute.String("talos.capability_hash", strings.Repeat("ab", 32)),
		attribute.String("talos.subject", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
	)
	span.AddEvent("frame "+frame, trace.WithAttributes(attribute.String("body", capTok)))
	span.AddEvent("request", trace.WithAttributes(attribute.String("query", "a=1&nonce="+nonce+"&api_key="+bearer)))
	span.RecordError(errors.New("verify failed for token " + capTok))
	span.SetStatus(codes.Error, "Authorization: Bearer "+bearer)
	span.End()

	got := mem.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans exported", len(got))
	}
	out := dump(t, got)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q reached the exporter:\n%s", s, out)
		}
	}
	// Public, useful values survive.
	for _, keep := range []string{strings.Repeat("ab", 32), "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", `"fine"`, "a=1", "GET /v1/frames"} {
		if !strings.Contains(out, keep) {
			t.Errorf("public value %q was masked:\n%s", keep, out)
		}
	}
}

func TestSensitiveKey(t *testing.T) {
	r := New(Config{SensitiveKeys: []string{"Tenant-Secretish"}})
	for key, want := range map[string]bool{
		"http.request.header.authorization":  true,
		"http.request.header.x-talos-key-id": true,
		"X-Talos-Timestamp":                  true,
		"talos.capability":                   true,
		"talos.capability_hash":              false,
		"config.digest":                      false,
		"a2a.frame.payload":                  true,
		"http.route":                         false,
		"user_agent.original":                false,
		"tenant-secretish-value":             true,
		"key_id":                             false,
	} {
		if got := r.SensitiveKey(key); got != want {
			t.Errorf("SensitiveKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestStringKeepsOrdinaryText(t *testing.T) {
	r := New(Config{})
	for _, s := range []string{
		"PUT /v1/config/{kind}/{name}",
		"relation talos_config_versions_kind_name_version_key does not exist",
		"sha256:" + strings.Repeat("0123456789abcdef", 4),
		"basic usage of bearer",
		"019a0f7c-6b1e-7a4e-9c1d-3f2b5a6c7d8e",
	} {
		if got := r.String(s); got != s {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("Authorization: Bearer abcdefgh", "abcdefghij")
	f.Add(`{"signature":"x"}`, "zzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s, secret string) {
		r := New(Config{})
		r.AddSecret(secret)
		out := r.String(s)
		if len(secret) >= minSecretLen && !strings.Contains(Mask, secret) && strings.Contains(out, secret) {
			t.Fatalf("registered secret %q survives in %q", secret, out)
		}
		if again := r.String(out); again != out {
			t.Fatalf("redaction not idempotent: %q -> %q", out, again)
		}
	})
}
