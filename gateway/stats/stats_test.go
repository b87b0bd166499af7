package stats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/gateway/stats"
)

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 12, 0, 30, 0, time.UTC)} }

func TestWindowCounts(t *testing.T) {
	c := newClock()
	r := stats.New(stats.Config{Now: c.Now})
	r.RecordDecision(stats.Decision{Surface: "mcp.gateway", Outcome: stats.OutcomeSuccess, Reason: "ALLOWED"})
	c.Add(time.Minute)
	r.RecordDecision(stats.Decision{Surface: "mcp.gateway", Outcome: stats.OutcomeDenied, Reason: "SCOPE_MISMATCH"})
	r.RecordDecision(stats.Decision{Surface: "llm.invoke", Outcome: stats.OutcomeDenied, Reason: "BUDGET_EXCEEDED"})
	r.RecordBudgetDenial(time.Time{})
	c.Add(20 * time.Minute)
	r.RecordDecision(stats.Decision{Surface: "llm.invoke", Outcome: stats.OutcomeError, Reason: "INTERNAL"})
	r.RecordRateLimitDenial(time.Time{})
	r.RecordDecision(stats.Decision{Surface: "llm.invoke", Outcome: stats.OutcomeDenied, Reason: "RATE_LIMITED"})

	s, err := r.Stats(15 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.Decisions.Total != 2 || s.Decisions.ByOutcome["error"] != 1 || s.Decisions.ByOutcome["denied"] != 1 || s.Decisions.ByOutcome["success"] != 0 {
		t.Fatalf("15m: %+v", s.Decisions)
	}
	if s.RateLimitDenials != 1 || s.BudgetDenials != 0 {
		t.Fatalf("15m denials: rate %d budget %d", s.RateLimitDenials, s.BudgetDenials)
	}
	if s.WindowSeconds != 900 || len(s.PerMinute) != 15 || s.Scope != stats.ScopeReplica {
		t.Fatalf("15m: window %d, %d minutes, scope %q", s.WindowSeconds, len(s.PerMinute), s.Scope)
	}
	if s.From != "2026-12-03T12:07:00Z" || s.To != "2026-12-03T12:21:30Z" {
		t.Fatalf("from %s to %s", s.From, s.To)
	}
	if last := s.PerMinute[14]; last.Minute != "2026-12-03T12:21:00Z" || last.Total != 2 || last.Denied != 1 {
		t.Fatalf("last minute %+v", last)
	}

	s, err = r.Stats(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"ALLOWED": 1, "SCOPE_MISMATCH": 1, "BUDGET_EXCEEDED": 1, "INTERNAL": 1, "RATE_LIMITED": 1}
	if fmt.Sprint(s.Decisions.ByReason) != fmt.Sprint(want) || s.Decisions.Total != 5 || s.BudgetDenials != 1 {
		t.Fatalf("1h: %+v budget %d", s.Decisions, s.BudgetDenials)
	}
	if s.Decisions.BySurface["mcp.gateway"] != 2 || s.Decisions.BySurface["llm.invoke"] != 3 {
		t.Fatalf("1h by surface %v", s.Decisions.BySurface)
	}

	// A day later the ring has reused every bucket: nothing is left.
	c.Add(24 * time.Hour)
	s, _ = r.Stats(stats.MaxWindow)
	if s.Decisions.Total != 0 || len(s.PerMinute) != 1440 {
		t.Fatalf("after a day: total %d, %d minutes", s.Decisions.Total, len(s.PerMinute))
	}
	// Too old or in the future: not recorded.
	r.RecordDecision(stats.Decision{At: c.Now().Add(-25 * time.Hour), Surface: "x", Outcome: "success"})
	r.RecordDecision(stats.Decision{At: c.Now().Add(time.Hour), Surface: "x", Outcome: "success"})
	if s, _ = r.Stats(stats.MaxWindow); s.Decisions.Total != 0 {
		t.Fatalf("out-of-ring decisions counted: %d", s.Decisions.Total)
	}
}

func TestWindowLimits(t *testing.T) {
	r := stats.New(stats.Config{Now: newClock().Now, Retention: time.Hour})
	for _, w := range []time.Duration{0, 59 * time.Second, 2 * time.Hour, 25 * time.Hour} {
		if _, err := r.Stats(w); err == nil {
			t.Fatalf("window %v accepted", w)
		}
	}
	s, err := r.Stats(90 * time.Second) // rounded up to 2 minutes
	if err != nil || s.WindowSeconds != 120 || len(s.PerMinute) != 2 {
		t.Fatalf("90s: %v %d %d", err, s.WindowSeconds, len(s.PerMinute))
	}
}

func TestPercentiles(t *testing.T) {
	c := newClock()
	r := stats.New(stats.Config{Now: c.Now})
	for i := 1; i <= 1000; i++ {
		r.RecordLatency(stats.LatencyCall, time.Time{}, time.Duration(i)*time.Millisecond/10) // 0.1 .. 100 ms
		if i%100 == 0 {
			c.Add(time.Minute) // spread over minutes: merged
		}
	}
	r.RecordLatency(stats.LatencyAuthorize, time.Time{}, 20*time.Microsecond)
	s, _ := r.Stats(time.Hour)
	for _, p := range []struct {
		name      string
		got, want float64
	}{{"p50", s.LatencyMS.P50, 50}, {"p95", s.LatencyMS.P95, 95}, {"p99", s.LatencyMS.P99, 99}, {"authorize p50", s.AuthorizeLatencyMS.P50, 0.02}} {
		if math.Abs(p.got-p.want)/p.want > 0.08 {
			t.Errorf("%s = %v ms, want %v ± 8%%", p.name, p.got, p.want)
		}
	}
	if s.LatencyMS.Count != 1000 || s.AuthorizeLatencyMS.Count != 1 {
		t.Fatalf("counts %d %d", s.LatencyMS.Count, s.AuthorizeLatencyMS.Count)
	}
	empty, _ := stats.New(stats.Config{Now: c.Now}).Stats(time.Minute)
	if empty.LatencyMS != (stats.Percentiles{}) {
		t.Fatalf("no samples: %+v", empty.LatencyMS)
	}
}

func TestMaxKeys(t *testing.T) {
	r := stats.New(stats.Config{Now: newClock().Now, MaxKeys: 3})
	for i := range 10 {
		r.RecordDecision(stats.Decision{Surface: "s" + strconv.Itoa(i), Outcome: "success", Reason: "ALLOWED"})
	}
	s, _ := r.Stats(time.Minute)
	if len(s.Decisions.BySurface) != 4 || s.Decisions.BySurface[stats.OtherKey] != 7 {
		t.Fatalf("by surface %v", s.Decisions.BySurface)
	}
}

// TestMeter feeds the Recorder through the meter wrapper with the Kernel's
// instrument names and attribute sets (talos/metrics.go).
func TestMeter(t *testing.T) {
	r := stats.New(stats.Config{Now: newClock().Now})
	m := r.Meter(nil)
	ctx := context.Background()
	dec, err := m.Int64Counter(talos.MetricDecisions)
	if err != nil {
		t.Fatal(err)
	}
	set := func(kv ...string) metric.MeasurementOption {
		var attrs []attribute.KeyValue
		for i := 0; i < len(kv); i += 2 {
			attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
		}
		return metric.WithAttributeSet(attribute.NewSet(attrs...))
	}
	dec.Add(ctx, 1, set("talos.surface", "mcp.gateway", "talos.outcome", "allowed", "talos.reason", "ALLOWED", "talos.code", ""))
	dec.Add(ctx, 2, set("talos.surface", "llm.invoke", "talos.outcome", "denied", "talos.reason", "ALLOWED", "talos.code", "BUDGET_EXCEEDED"))
	dec.Add(ctx, 1, set("talos.surface", "llm.invoke", "talos.outcome", "error", "talos.reason", "ALLOWED", "talos.code", "INTERNAL"))
	rl, _ := m.Int64Counter(talos.MetricRateLimitDenials)
	rl.Add(ctx, 1, set("talos.surface", "llm.invoke"))
	res, _ := m.Int64Counter(talos.MetricBudgetReservations)
	res.Add(ctx, 1, set("talos.surface", "llm.invoke", "talos.result", "denied"))
	res.Add(ctx, 1, set("talos.surface", "llm.invoke", "talos.result", "reserved"))
	call, _ := m.Float64Histogram(talos.MetricCallDuration)
	call.Record(ctx, 0.004, set("talos.surface", "llm.invoke", "talos.outcome", "denied"))
	other, _ := m.Int64Counter("something.else")
	other.Add(ctx, 5)

	s, _ := r.Stats(time.Minute)
	if s.Decisions.Total != 4 || s.Decisions.ByOutcome["success"] != 1 || s.Decisions.ByOutcome["denied"] != 2 || s.Decisions.ByOutcome["error"] != 1 {
		t.Fatalf("decisions %+v", s.Decisions)
	}
	if s.Decisions.ByReason["BUDGET_EXCEEDED"] != 2 || s.Decisions.ByReason["INTERNAL"] != 1 || s.Decisions.ByReason["ALLOWED"] != 1 || len(s.Decisions.ByReason) != 3 {
		t.Fatalf("by reason %v", s.Decisions.ByReason)
	}
	if s.RateLimitDenials != 1 || s.BudgetDenials != 1 || s.LatencyMS.Count != 1 {
		t.Fatalf("rate %d budget %d latency %+v", s.RateLimitDenials, s.BudgetDenials, s.LatencyMS)
	}
	if math.Abs(s.LatencyMS.P50-4)/4 > 0.08 {
		t.Fatalf("p50 %v, want 4 ms", s.LatencyMS.P50)
	}
}

func TestHandler(t *testing.T) {
	r := stats.New(stats.Config{Now: newClock().Now})
	r.RecordDecision(stats.Decision{Surface: "mcp.gateway", Outcome: "success", Reason: "ALLOWED"})
	mux := http.NewServeMux()
	r.Register(mux, func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			if req.Header.Get("Authorization") != "Bearer ok" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			next(w, req)
		}
	})
	get := func(q string, auth bool) (int, []byte) {
		req := httptest.NewRequest("GET", "/v1/admin/stats"+q, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer ok")
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		return w.Code, w.Body.Bytes()
	}
	code, body := get("", true)
	var s map[string]any
	if code != 200 || json.Unmarshal(body, &s) != nil {
		t.Fatalf("%d %s", code, body)
	}
	for _, k := range []string{"window_seconds", "from", "to", "decisions", "latency_ms", "per_minute", "rate_limit_denials", "budget_denials", "scope"} {
		if _, ok := s[k]; !ok {
			t.Fatalf("no %q in %s", k, body)
		}
	}
	if s["window_seconds"].(float64) != 900 {
		t.Fatalf("default window %v", s["window_seconds"])
	}
	for _, q := range []string{"?window=30s", "?window=25h", "?window=abc", "?window=-5m", "?window=1m&window=2m", "?other=1"} {
		if code, body := get(q, true); code != 400 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
	}
	if code, _ := get("?window=1h", false); code != 403 {
		t.Fatalf("unauthorized: %d", code)
	}
	nilMux := http.NewServeMux()
	r.Register(nilMux, nil)
	w := httptest.NewRecorder()
	nilMux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/admin/stats", nil))
	if w.Code != 401 {
		t.Fatalf("nil authorize: %d", w.Code)
	}
}

func FuzzWindow(f *testing.F) {
	for _, s := range []string{"15m", "1h", "24h", "1m0s", "90s", "x", "-1m", "1e9h"} {
		f.Add(s)
	}
	r := stats.New(stats.Config{Now: newClock().Now})
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest("GET", "/v1/admin/stats", nil)
		req.URL.RawQuery = "window=" + v
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("%q: %d", v, w.Code)
		}
	})
}
