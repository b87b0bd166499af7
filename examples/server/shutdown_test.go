package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestGracefulShutdownDrains(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	entered := make(chan struct{})
	release := make(chan struct{})
	ts.mux.HandleFunc("GET /test/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	var flushed, workerStopped atomic.Bool
	var order []string
	ts.OnShutdown("audit-log", func(ctx context.Context) error { flushed.Store(true); order = append(order, "audit"); return nil })
	ts.OnShutdown("later", func(ctx context.Context) error { order = append(order, "later"); return nil })
	ts.Go("worker", func(ctx context.Context) error {
		<-ctx.Done()
		if flushed.Load() {
			t.Error("flush hook ran before the worker stopped")
		}
		workerStopped.Store(true)
		return nil
	})
	ts.serve(t)
	addr := strings.TrimPrefix(ts.url, "http://")

	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get(ts.url + "/test/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{string(b), err}
	}()
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop(t) }()

	// New connections are refused once the listener is closed...
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		} else if !errors.Is(err, syscall.ECONNRESET) { // reset: accepted into the backlog as the listener closed
			t.Fatalf("dial after shutdown began: %v, want connection refused", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...while the in-flight request is still running, and readiness says so.
	if st, b := ready(t, ts); st != 503 || b.Status != "shutting_down" {
		t.Fatalf("ready while draining: %d %+v", st, b)
	}
	select {
	case <-stopped:
		t.Fatal("Serve returned before the in-flight request finished")
	case <-time.After(50 * time.Millisecond):
	}
	if flushed.Load() {
		t.Fatal("flush hooks ran while a request was in flight")
	}
	close(release)
	r := <-slow
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !flushed.Load() || !workerStopped.Load() {
		t.Fatalf("flushed=%v workerStopped=%v", flushed.Load(), workerStopped.Load())
	}
	if strings.Join(order, ",") != "later,audit" {
		t.Fatalf("hooks ran in order %v, want newest first", order)
	}
}

func TestShutdownDeadlineClosesStragglers(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	ts := newTestServer(t, cfg)
	entered := make(chan struct{})
	ts.mux.HandleFunc("GET /test/stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // ends only when the connection is closed
	})
	var flushed atomic.Bool
	ts.OnShutdown("audit-log", func(ctx context.Context) error { flushed.Store(true); return nil })
	ts.serve(t)
	go http.Get(ts.url + "/test/stuck")
	<-entered
	start := time.Now()
	err := ts.stop(t)
	if err == nil || !strings.Contains(err.Error(), "drain") {
		t.Fatalf("Serve after a missed drain deadline: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %v with a 200ms deadline", el)
	}
	if !flushed.Load() {
		t.Fatal("flush hooks skipped after a missed drain deadline")
	}
}

// TestRunStopsOnSIGTERM drives the real main path: run() with flags, a
// SIGTERM delivered to this process, a clean exit code.
func TestRunStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir() + "/data"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"-data", dir, "-listen", addr, "-trace-exporter", "none"},
			func(string) string { return "" }, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health/live")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never came up: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stdout.String(), "did:key:z") || parseCredential(stdout.String()) == "" {
		t.Fatalf("first start printed %q", stdout.String())
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d: %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if !bytes.Contains([]byte(stderr.String()), []byte("stopped")) {
		t.Fatalf("log: %s", stderr.String())
	}
}
