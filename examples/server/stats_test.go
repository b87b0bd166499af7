package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/stats"
)

func adminStats(t *testing.T, ts *testServer, cred, query string) stats.Stats {
	t.Helper()
	var s stats.Stats
	if st := decode(t, ts.do(t, "GET", "/v1/admin/stats"+query, cred, nil), &s); st != http.StatusOK {
		t.Fatalf("GET /v1/admin/stats%s: %d", query, st)
	}
	return s
}

// TestAdminStatsKernelDecisions: the statistics count the Kernel's own
// decisions (through its meter): allowed, denied by scope, rate-limited.
func TestAdminStatsKernelDecisions(t *testing.T) {
	cfg := testConfig(t)
	cfg.RateLimits = map[string]rateSet{opAuthorize: budget.PerMinute(3)}
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	before := adminStats(t, ts, ts.cred, "?window=1h")

	for _, action := range []string{"read", "read", "write", "read", "read"} {
		alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: action}, nil)
	}
	after := adminStats(t, ts, ts.cred, "?window=1h")
	delta := func(m1, m0 map[string]uint64, k string) uint64 { return m1[k] - m0[k] }
	d, d0 := after.Decisions, before.Decisions
	if got := d.Total - d0.Total; got != 5 {
		t.Fatalf("decisions: +%d, want +5 (%+v)", got, d)
	}
	if delta(d.BySurface, d0.BySurface, opAuthorize) != 5 {
		t.Fatalf("by surface %v", d.BySurface)
	}
	if delta(d.ByOutcome, d0.ByOutcome, "success") != 3 || delta(d.ByOutcome, d0.ByOutcome, "denied") != 2 {
		t.Fatalf("by outcome %v (before %v)", d.ByOutcome, d0.ByOutcome)
	}
	if delta(d.ByReason, d0.ByReason, "ALLOWED") != 3 || delta(d.ByReason, d0.ByReason, "SCOPE_MISMATCH") != 1 || delta(d.ByReason, d0.ByReason, "RATE_LIMITED") != 1 {
		t.Fatalf("by reason %v (before %v)", d.ByReason, d0.ByReason)
	}
	if after.RateLimitDenials-before.RateLimitDenials != 1 {
		t.Fatalf("rate-limit denials %d → %d", before.RateLimitDenials, after.RateLimitDenials)
	}
	if after.LatencyMS.Count-before.LatencyMS.Count != 5 || after.LatencyMS.P50 <= 0 || after.AuthorizeLatencyMS.Count == 0 {
		t.Fatalf("latency %+v authorize %+v", after.LatencyMS, after.AuthorizeLatencyMS)
	}
	if after.Scope != stats.ScopeReplica || after.WindowSeconds != 3600 || len(after.PerMinute) != 60 {
		t.Fatalf("scope %q window %d, %d minutes", after.Scope, after.WindowSeconds, len(after.PerMinute))
	}
	var sum uint64
	for _, m := range after.PerMinute {
		sum += m.Total
	}
	if sum != d.Total {
		t.Fatalf("per-minute total %d, window total %d", sum, d.Total)
	}
	// The Kernel's metrics still reach the Prometheus endpoint.
	resp := ts.do(t, "GET", "/metrics", "", nil)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !contains(string(metrics), "talos_decisions") {
		t.Fatal("the Kernel's talos.decisions metric is missing from /metrics")
	}
}

// TestAdminStatsAccess: admin.stats read is granted to every built-in role
// (the auditor included); no credential is 401; bad windows are 400.
func TestAdminStatsAccess(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	for _, role := range admin.Roles() {
		cred := ts.newAdmin(t, role).session(t, ts, "")
		adminStats(t, ts, cred, "")
	}
	var eb errBody
	st := decode(t, ts.do(t, "GET", "/v1/admin/stats", "", nil), &eb)
	expectErr(t, "no credential", st, eb, "AUTH_INVALID")
	for _, q := range []string{"?window=10s", "?window=2d", "?window=25h", "?window=15m&x=1"} {
		st := decode(t, ts.do(t, "GET", "/v1/admin/stats"+q, ts.cred, nil), &eb)
		expectErr(t, q, st, eb, "TALOS_INVALID_INPUT")
	}
}
