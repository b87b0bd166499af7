package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/gateway/serve"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestServeDrainsThenStopsWorkersThenHooks(t *testing.T) {
	l := serve.NewLifecycle(nil)
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		note("request")
		io.WriteString(w, "finished")
	})
	l.OnShutdown("first", func(context.Context) error { note("hook first"); return nil })
	l.OnShutdown("second", func(context.Context) error { note("hook second"); return errors.New("flush failed") })
	l.Go("worker", func(ctx context.Context) error { <-ctx.Done(); note("worker"); return ctx.Err() })

	ln := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, &http.Server{Handler: mux}, ln, 10*time.Second) }()
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			body <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-entered
	if l.Draining() {
		t.Fatal("draining before shutdown")
	}
	cancel()
	for !l.Draining() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if b := <-body; b != "finished" {
		t.Fatalf("in-flight request: %q", b)
	}
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "shutdown hook second: flush failed") {
		t.Fatalf("Serve: %v", err)
	}
	want := []string{"request", "worker", "hook second", "hook first"}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	// After shutdown: no new workers, and hooks do not run twice.
	l.Go("late", func(context.Context) error { t.Error("a worker started after shutdown"); return nil })
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestServeDeadlineClosesStragglers(t *testing.T) {
	l := serve.NewLifecycle(nil)
	entered := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	var flushed atomic.Bool
	l.OnShutdown("flush", func(context.Context) error { flushed.Store(true); return nil })
	ln := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, &http.Server{Handler: mux}, ln, 100*time.Millisecond) }()
	go http.Get("http://" + ln.Addr().String() + "/stuck")
	<-entered
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "drain") {
		t.Fatalf("Serve: %v", err)
	}
	if !flushed.Load() {
		t.Fatal("hooks skipped after a missed drain deadline")
	}
}

func TestCloseWithoutServe(t *testing.T) {
	l := serve.NewLifecycle(nil)
	var ran atomic.Bool
	l.Go("never", func(context.Context) error { t.Error("a worker ran without Serve"); return nil })
	l.OnShutdown("close", func(context.Context) error { ran.Store(true); return nil })
	if err := l.Close(t.Context()); err != nil || !ran.Load() || !l.Draining() {
		t.Fatalf("Close: %v ran=%v draining=%v", err, ran.Load(), l.Draining())
	}
}

func TestWorkersDeadline(t *testing.T) {
	l := serve.NewLifecycle(nil)
	stuck := make(chan struct{})
	defer close(stuck)
	l.Go("stuck", func(context.Context) error { <-stuck; return nil })
	l.Start()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Close(ctx); !errors.Is(err, serve.ErrWorkersDeadline) {
		t.Fatalf("Close: %v", err)
	}
}

func ready(t *testing.T, h *serve.Health) (int, serve.ReadyBody) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Ready(rec, httptest.NewRequest("GET", "/health/ready", nil))
	if strings.Contains(rec.Body.String(), "secret-user") {
		t.Errorf("the answer carries a driver message: %s", rec.Body)
	}
	var b serve.ReadyBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", rec.Header().Get("Content-Type"))
	}
	return rec.Code, b
}

func TestReady(t *testing.T) {
	var draining atomic.Bool
	h := &serve.Health{Timeout: 50 * time.Millisecond, Draining: draining.Load}
	var primaryDown, replicaDown atomic.Bool
	fail := func(down *atomic.Bool, msg string) func(context.Context) error {
		return func(context.Context) error {
			if down.Load() {
				return errors.New(msg)
			}
			return nil
		}
	}
	h.Add("primary", true, fail(&primaryDown, "boom"))
	h.Add("replica", false, fail(&replicaDown, "dial tcp db-replica.internal:5432: user secret-user"))
	if st, b := ready(t, h); st != 200 || b.Status != "ok" || len(b.Checks) != 2 || b.Failed != nil {
		t.Fatalf("all up: %d %+v", st, b)
	}
	replicaDown.Store(true)
	st, b := ready(t, h)
	if st != 200 || b.Status != "degraded" || !slices.Equal(b.Failed, []string{"replica"}) || b.Checks["replica"].Error != "unavailable" {
		t.Fatalf("replica down: %d %+v", st, b)
	}
	primaryDown.Store(true)
	if st, b := ready(t, h); st != 503 || b.Status != "failed" || !slices.Equal(b.Failed, []string{"primary", "replica"}) {
		t.Fatalf("primary down: %d %+v", st, b)
	}
	draining.Store(true)
	if st, b := ready(t, h); st != 503 || b.Status != "shutting_down" || b.Checks != nil {
		t.Fatalf("draining: %d %+v", st, b)
	}
	rec := httptest.NewRecorder()
	h.Live(rec, httptest.NewRequest("GET", "/health/live", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("live while draining: %d %s", rec.Code, rec.Body)
	}
}

func TestReadyTimeout(t *testing.T) {
	h := &serve.Health{Timeout: 10 * time.Millisecond}
	h.Add("slow", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if st, b := ready(t, h); st != 503 || b.Checks["slow"].Error != "timeout" {
		t.Fatalf("slow check: %d %+v", st, b)
	}
}

func TestCachedWritableDir(t *testing.T) {
	dir := t.TempDir()
	var probes atomic.Int32
	probe := serve.WritableDir(dir)
	check := serve.Cached(time.Hour, func(ctx context.Context) error { probes.Add(1); return probe(ctx) })
	for range 5 {
		if err := check(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes within the cache interval", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("probe left %d files", len(ents))
	}
	if err := serve.WritableDir(filepath.Join(dir, "missing"))(t.Context()); err == nil {
		t.Fatal("a missing directory is writable")
	}
	every := serve.Cached(time.Nanosecond, func(ctx context.Context) error { probes.Add(1); return nil })
	every(t.Context())
	time.Sleep(time.Millisecond)
	every(t.Context())
	if n := probes.Load(); n != 3 {
		t.Fatalf("%d probes, want a new one after the interval", n)
	}
}
