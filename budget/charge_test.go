package budget_test

import (
	"testing"

	"github.com/talosgo/talos/budget"
)

// plainBudget hides MemBudget's Charge, so budget.Charge takes its
// Reserve+Commit fallback.
type plainBudget struct{ budget.Budget }

func TestChargeFallbackAndObserve(t *testing.T) {
	mem, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	scope := budget.Scope{ID: "agent:1", Limit: 1000, Period: budget.Lifetime()}
	req := budget.ReserveRequest{Scopes: []budget.Scope{scope}, Amount: 600}
	for _, tc := range []struct {
		name string
		b    budget.Budget
	}{
		{"native", mem},
		{"fallback", plainBudget{mem}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events []budget.UsageEvent
			ob := budget.Observe(tc.b, func(e budget.UsageEvent) { events = append(events, e) }, nil)
			grp := "g-" + tc.name
			r := req
			r.Group = grp
			got, err := budget.Charge(t.Context(), ob, r)
			if err != nil || !got.Allowed || got.State != budget.StateCommitted {
				t.Fatalf("Charge = %+v, %v", got, err)
			}
			if len(events) != 1 || events[0].Kind != budget.EventCommit || events[0].CostMicros != 600 {
				t.Fatalf("events %+v, want one commit of 600", events)
			}
			denied, err := budget.Charge(t.Context(), ob, r)
			if err != nil || denied.Allowed {
				t.Fatalf("second Charge = %+v, %v; want denied", denied, err)
			}
			if len(events) != 2 || events[1].Status != budget.StatusDenied {
				t.Fatalf("events %+v, want a denial second", events)
			}
			u, err := mem.Usage(t.Context(), grp, scope)
			if err != nil || u.Spent != 600 || u.Reserved != 0 {
				t.Fatalf("Usage = %+v, %v", u, err)
			}
		})
	}
}
