package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.9.9.9:1", "http://localhost:8080", "http://[::1]:8080"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://192.168.1.1", "http://example.com", "https://127.0.0.1:1", "127.0.0.1:8080", "http://[::2]:1", "http://0.0.0.0:80"} {
		if err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestMeasureBare runs one bounded round against the bare handler in
// process: every request is signed, answered 200 and counted as allowed.
func TestMeasureBare(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bare", bareHandler)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	workers, err := bareWorkers(2)
	if err != nil {
		t.Fatal(err)
	}
	o := options{n: 50, c: 2, duration: time.Minute}
	r := measure(context.Background(), srv.Client(), []string{srv.URL}, "/bare", o, workers)
	if len(r.lat) != 50 || r.allowed != 50 || r.failed != 0 || r.statuses[200] != 50 {
		t.Fatalf("got %d requests, %d allowed, %d failed, statuses %v", len(r.lat), r.allowed, r.failed, r.statuses)
	}
	if err := report("test", r); err != nil {
		t.Fatal(err)
	}
	// A second round on the same workers starts from zero.
	r = measure(context.Background(), srv.Client(), []string{srv.URL}, "/nope", options{n: 3, c: 2, duration: time.Minute}, workers)
	if r.failed != 3 || r.statuses[404] != 3 {
		t.Fatalf("unknown path: %d failed, statuses %v", r.failed, r.statuses)
	}
	if err := report("test", r); err == nil {
		t.Fatal("a round with failed requests reported no error")
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 values = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median of 4 values = %v", m)
	}
}

// TestAuditSizeAndReplayCheck: the tree size is the checkpoint's second
// line, and the replay check wants every other replica to refuse the
// kept request with 409 REPLAY_DETECTED.
func TestAuditSizeAndReplayCheck(t *testing.T) {
	seen := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/audit/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "talos.local/audit\n42\nAAAA\n\n— sig\n")
	})
	mux.HandleFunc("POST /v1/authorize", func(w http.ResponseWriter, r *http.Request) {
		n := r.Header.Get("X-Talos-Nonce")
		if seen[n] {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"code":"REPLAY_DETECTED"}`)
			return
		}
		seen[n] = true
	})
	a, b := httptest.NewServer(mux), httptest.NewServer(mux)
	defer a.Close()
	defer b.Close()
	n, err := auditSize(context.Background(), a.Client(), a.URL)
	if err != nil || n != 42 {
		t.Fatalf("auditSize = %d, %v", n, err)
	}
	o := options{targets: []string{a.URL, b.URL}}
	w := &worker{}
	w.keep(a.URL, "/v1/authorize", http.Header{"X-Talos-Nonce": {"n1"}})
	if err := checkReplay(context.Background(), a.Client(), o, []*worker{w}); err == nil {
		t.Fatal("a replica that accepted the replay passed the check")
	}
	seen["n1"] = true
	if err := checkReplay(context.Background(), a.Client(), o, []*worker{w}); err != nil {
		t.Fatal(err)
	}
}
