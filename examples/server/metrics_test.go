package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsEndpoint: after an allowed and a denied authorize request,
// GET /metrics (Prometheus text format) shows the Kernel's decisions by
// surface, outcome and reason, its latency histogram and the audit log's
// group commits, and carries neither the token nor the principal.
func TestMetricsEndpoint(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	authorize(t, alice, tok.Token, "files", "read")
	if d := authorize(t, alice, tok.Token, "files", "write"); d.Allowed {
		t.Fatal("write allowed")
	}
	resp := ts.do(t, "GET", "/metrics", "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`talos_decisions_total{`,
		`talos_outcome="allowed"`,
		`talos_outcome="denied"`,
		`talos_reason="ALLOWED"`,
		`talos_surface="kernel.authorize"`,
		`talos_authorize_duration_seconds_bucket{`,
		`talos_call_duration_seconds_count{`,
		`talos_audit_batch_size_bucket{`,
		`talos_audit_commit_duration_seconds_count{`,
		`service_name="talos-server"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, tok.Token[:20]) || strings.Contains(text, alice.did) {
		t.Error("/metrics carries the token or the principal")
	}
}

// TestAccessLogLines: the server logs one structured line per request with
// the route, principal, decision and status, never the token.
func TestAccessLogLines(t *testing.T) {
	var buf syncBuffer
	cfg := testConfig(t)
	ts := &testServer{out: &syncBuffer{}}
	cfg.stdout = ts.out
	s, err := New(t.Context(), cfg, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(t.Context()) })
	ts.Server, ts.cfg = s, cfg
	ts.setupAdmin(t)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	authorize(t, alice, tok.Token, "files", "read")
	var line map[string]any
	for _, l := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(l, `"msg":"request"`) || !strings.Contains(l, `"path":"/v1/authorize"`) {
			continue
		}
		if err := json.NewDecoder(bytes.NewReader([]byte(l))).Decode(&line); err != nil {
			t.Fatal(err)
		}
	}
	if line == nil {
		t.Fatalf("no access-log line for /v1/authorize in:\n%s", buf.String())
	}
	if line["principal"] != alice.did || line["reason"] != "ALLOWED" || line["status"] != 200.0 || line["route"] != "POST /v1/authorize" {
		t.Errorf("access-log line %v", line)
	}
	if strings.Contains(buf.String(), tok.Token[:20]) {
		t.Error("the log carries the token")
	}
}
