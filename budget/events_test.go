package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
)

func TestObserve(t *testing.T) {
	m, _ := budget.NewMemBudget(budget.MemBudgetConfig{})
	var got []budget.UsageEvent
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := budget.Observe(m, func(e budget.UsageEvent) { got = append(got, e) }, func() time.Time { return at })
	ctx := context.Background()
	meta := budget.Meta{KeyID: "k1", TeamID: "t1"}
	warn := budget.Scope{ID: "team:t1", Limit: 10, Mode: budget.ModeWarn}
	req := budget.ReserveRequest{Scopes: []budget.Scope{warn}, Amount: 20, Meta: meta, IdempotencyKey: "r1"}

	r, err := b.Reserve(ctx, req) // warned
	if err != nil || !r.Warned {
		t.Fatal(r, err)
	}
	if _, err := b.Reserve(ctx, req); err != nil { // replay: no event
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, r.ID, 15); err != nil { // success 15
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, r.ID, 15); err != nil { // replay: no event
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, "team:t1~00000000000000000000000000000000", 1); err == nil { // error
		t.Fatal("unknown reservation committed")
	}
	if _, err := b.Reserve(ctx, budget.ReserveRequest{Meta: meta}); err == nil { // error
		t.Fatal("invalid request accepted")
	}
	want := []struct {
		kind   budget.EventKind
		status string
		cost   int64
		warned bool
	}{
		{budget.EventReserve, budget.StatusSuccess, 0, true},
		{budget.EventCommit, budget.StatusSuccess, 15, false},
		{budget.EventCommit, budget.StatusError, 0, false},
		{budget.EventReserve, budget.StatusError, 0, false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e.Kind != w.kind || e.Status != w.status || e.CostMicros != w.cost || e.Warned != w.warned || !e.Timestamp.Equal(at) || e.EventID == "" {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
	}
	if got[1].Meta != meta || got[1].ReservationID != r.ID {
		t.Errorf("commit event meta %+v id %q", got[1].Meta, got[1].ReservationID)
	}
}
