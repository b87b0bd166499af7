package talos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
)

// TestAccessLog wraps a Kernel middleware over a mux with AccessLog and
// checks one JSON line per request with what the Talos layer decided, and
// that neither the capability token nor the body reaches the log.
func TestAccessLog(t *testing.T) {
	f := newKernelFixture(t, budget.PerMinute(100))
	routes := mustRoutes(t, talos.Route{Pattern: "POST /search/{index}", Tool: "search", Action: "query", Opcode: "tool.call"})
	mw, err := f.kernel.Middleware(talos.KernelMiddlewareConfig{Attester: newAttester(t, routes, talos.PassThrough)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /search/{index}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("found")) })
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	var buf bytes.Buffer
	h := talos.AccessLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), mw.Wrap(mux))
	signer := signerFor(t, f.agent)
	send := func(method, target, capHeader string, sign bool) int {
		r := httptest.NewRequest(method, target, strings.NewReader(`{"q":"secret-body"}`))
		if capHeader != "" {
			r.Header.Set(talos.HeaderCapability, capHeader)
		}
		if sign {
			if err := signer.Sign(r, "tool.call"); err != nil {
				t.Fatal(err)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	codes := []int{
		send("POST", "/search/a", f.token, true),   // allowed
		send("POST", "/search/a", "", false),       // no attestation: 401
		send("POST", "/search/a", "garbage", true), // bad capability: denied
		send("GET", "/health", "", false),          // passed through
	}
	if codes[0] != 200 || codes[1] != 401 || codes[2] < 400 || codes[3] != 200 {
		t.Fatalf("statuses %v", codes)
	}
	if strings.Contains(buf.String(), f.token[:24]) || strings.Contains(buf.String(), "secret-body") {
		t.Fatal("the access log carries the token or the body")
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	want := []map[string]any{
		{"level": "INFO", "route": "POST /search/{index}", "status": 200.0, "opcode": "tool.call", "principal": f.agent.DID().String(), "surface": "tool.call", "allowed": true, "reason": "ALLOWED"},
		{"level": "WARN", "status": 401.0, "opcode": "tool.call", "code": "AUTH_INVALID"},
		{"level": "WARN", "opcode": "tool.call", "principal": f.agent.DID().String(), "allowed": false},
		{"level": "INFO", "path": "/health", "status": 200.0},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
	}
	if _, ok := lines[3]["principal"]; ok {
		t.Errorf("a passed-through request has a principal: %v", lines[3])
	}
	if c, _ := lines[2]["code"].(string); c == "" {
		t.Errorf("a denied request has no code: %v", lines[2])
	}
}

// TestObserveOutsideAccessLog: an Observation is filled by a Kernel call
// made with its context.
func TestObserveOutsideAccessLog(t *testing.T) {
	f := newKernelFixture(t, budget.PerMinute(100))
	ctx, obs := talos.Observe(context.Background())
	call := f.call("shell", 1)
	if _, err := f.kernel.Do(ctx, call, nil); err != nil {
		t.Fatal(err)
	}
	if !obs.Decided || obs.Allowed || obs.Surface != "tool.call" || obs.Reason == "" || obs.Code == "" {
		t.Fatalf("observation %+v", obs)
	}
}
