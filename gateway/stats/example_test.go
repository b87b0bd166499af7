package stats_test

import (
	"fmt"
	"time"

	"github.com/talosgo/talos/gateway/stats"
)

// A Recorder fed directly; a server gives Recorder.Meter(meter) to its
// Kernels instead and mounts the route with Register.
func ExampleRecorder() {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r := stats.New(stats.Config{Now: func() time.Time { return at }})
	r.RecordDecision(stats.Decision{Surface: "mcp.gateway", Outcome: stats.OutcomeSuccess, Reason: "ALLOWED"})
	r.RecordDecision(stats.Decision{Surface: "llm.invoke", Outcome: stats.OutcomeDenied, Reason: "BUDGET_EXCEEDED"})
	r.RecordBudgetDenial(time.Time{})
	r.RecordLatency(stats.LatencyCall, time.Time{}, 3*time.Millisecond)

	s, _ := r.Stats(15 * time.Minute)
	fmt.Println(s.Decisions.Total, s.Decisions.ByOutcome["denied"], s.Decisions.ByReason["BUDGET_EXCEEDED"], s.BudgetDenials, s.Scope)
	// Output: 2 1 1 1 replica
}
