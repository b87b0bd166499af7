package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	*Server
	cfg   Config
	out   *syncBuffer
	spans *tracetest.InMemoryExporter
	// cred is an owner's admin session token (talos_session_...) on a
	// first start: newTestServer spends the bootstrap credential on an
	// owner (owner) and mints the session, so tests send admin calls as
	// "Authorization: Bearer "+cred. Empty on a later start.
	cred string
	// bootstrap is the printed bootstrap credential (first start only),
	// spent by newTestServer.
	bootstrap string
	owner     *testAdmin // the owner admin identity (first start only)
	url       string     // set by serve

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan error
	stopErr  error
}

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir() + "/data"
	cfg.Listen = "127.0.0.1:0"
	cfg.TraceExporter = "none"
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.KEKRotation = 0
	return cfg
}

// newTestServer builds a server (not serving) from cfg with an in-memory
// span exporter and captured stdout. It is closed when the test ends unless
// serve was called (serve's shutdown closes it).
func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{out: &syncBuffer{}, spans: tracetest.NewInMemoryExporter()}
	cfg.stdout = ts.out
	cfg.spanExporter = ts.spans
	s, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Server, ts.cfg = s, cfg
	ts.setupAdmin(t)
	// The set-up's admin requests are not the test's spans.
	if err := s.tel.TracerProvider().ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts.spans.Reset()
	t.Cleanup(func() {
		if ts.done == nil {
			s.Close(context.Background())
		}
	})
	return ts
}

func parseCredential(out string) string {
	i := strings.Index(out, adminCredentialPfx)
	if i < 0 {
		return ""
	}
	return strings.Fields(out[i:])[0]
}

// serve starts Serve on a loopback port; stop (or the test's end) shuts it down.
func (ts *testServer) serve(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel, ts.done = cancel, make(chan error, 1)
	ts.url = "http://" + ln.Addr().String()
	go func() { ts.done <- ts.Serve(ctx, ln) }()
	t.Cleanup(func() { ts.stop(t) })
}

// stop begins the graceful shutdown and waits for Serve to return.
func (ts *testServer) stop(t *testing.T) error {
	t.Helper()
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case ts.stopErr = <-ts.done:
		case <-time.After(30 * time.Second):
			ts.stopErr = errors.New("Serve did not return after shutdown")
		}
	})
	return ts.stopErr
}

// do sends a request to the in-process handler.
func (ts *testServer) do(t *testing.T, method, path, auth string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://talos.test"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

// decode reads a JSON response body into v and returns the status.
func decode(t *testing.T, resp *http.Response, v any) int {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("status %d, body %q: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// errBody is the contract error body.
type errBody struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	RequestID string         `json:"request_id"`
	Retryable *bool          `json:"retryable"`
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
