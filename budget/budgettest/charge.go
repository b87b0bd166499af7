package budgettest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/talosgo/talos/budget"
)

// runCharge is the Charge part of Run. It runs on every Budget: through
// the back-end's own Charge when it is a budget.Charger, through
// budget.Charge's Reserve+Commit fallback otherwise (and then says so).
func runCharge(t *testing.T, newBudget func(t *testing.T) budget.Budget) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b budget.Budget)
	}{
		{"ChargeAdmits", testChargeAdmits},
		{"ChargeDenyChangesNothing", testChargeDeny},
		{"ChargeIdempotent", testChargeIdempotent},
		{"ChargeWarnAndOff", testChargeWarnOff},
		{"ChargeNoOverspendConcurrent", testChargeConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBudget(t)
			if _, ok := b.(budget.Charger); !ok {
				t.Log("not a budget.Charger: testing budget.Charge's Reserve+Commit fallback")
			}
			tc.fn(t, b)
		})
	}
}

func mustCharge(t *testing.T, b budget.Budget, req budget.ReserveRequest) budget.Reservation {
	t.Helper()
	r, err := budget.Charge(t.Context(), b, req)
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	return r
}

func testChargeAdmits(t *testing.T, b budget.Budget) {
	org := Name("org")
	scopes := []budget.Scope{hard(Name("agent"), 1000), hard(Name("team"), 5000),
		{ID: org, Limit: 10000, Period: budget.Daily()}}
	r := mustCharge(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 300})
	if !r.Allowed || r.State != budget.StateCommitted || r.Amount != 300 || r.Replayed || len(r.Scopes) != 3 {
		t.Fatalf("Charge = %+v, want an allowed committed charge", r)
	}
	if _, native := b.(budget.Charger); native && r.ID != "" {
		t.Fatalf("Charge without an idempotency key returned ID %q, want none", r.ID)
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 300, 0, 0)
	}
	// The charge counts against later reservations and charges exactly.
	r = mustCharge(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 700})
	if !r.Allowed || r.Scopes[0].Used != 300 || r.Scopes[0].Reserved != 0 {
		t.Fatalf("second Charge = %+v", r)
	}
	wantUsage(t, b, org, scopes[0], 1000, 0, 0)
	if res := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 1}); res.Allowed || res.DeniedBy != scopes[0].ID {
		t.Fatalf("Reserve after the limit was charged: %+v", res)
	}
}

func testChargeDeny(t *testing.T, b budget.Budget) {
	org := Name("org")
	scopes := []budget.Scope{hard(Name("agent"), 1000), hard(org, 500)}
	held := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 200})
	r := mustCharge(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 301})
	if r.Allowed || r.DeniedBy != org || r.State != budget.StateNone || r.ID != "" {
		t.Fatalf("Charge over the limit = %+v, want denied by %s", r, org)
	}
	if r.Scopes[1].Reserved != 200 || !r.Scopes[1].Exceeded || r.Scopes[0].Exceeded {
		t.Fatalf("Scopes = %+v", r.Scopes)
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 0, 200, 0)
	}
	if err := r.Err(); err == nil {
		t.Fatal("Err() = nil for a denied charge")
	}
	// Exactly the room left is admitted.
	if r := mustCharge(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 300}); !r.Allowed {
		t.Fatalf("Charge of the room left: %+v", r)
	}
	wantUsage(t, b, org, scopes[1], 300, 200, 0)
	if _, err := b.Commit(t.Context(), held.ID, 200); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, b, org, scopes[1], 500, 0, 0)
}

func testChargeIdempotent(t *testing.T, b budget.Budget) {
	org := Name("org")
	scopes := []budget.Scope{hard(Name("agent"), 1000), hard(org, 1000)}
	req := budget.ReserveRequest{Scopes: scopes, Amount: 400, IdempotencyKey: Name("idem")}
	first := mustCharge(t, b, req)
	if !first.Allowed || first.ID == "" || first.State != budget.StateCommitted {
		t.Fatalf("Charge with a key = %+v, want an ID", first)
	}
	again := mustCharge(t, b, req)
	if !again.Replayed || again.ID != first.ID || again.State != budget.StateCommitted || again.Amount != 400 {
		t.Fatalf("retried Charge = %+v, want a replay of %s", again, first.ID)
	}
	if rr := mustReserve(t, b, req); !rr.Replayed || rr.ID != first.ID {
		t.Fatalf("Reserve with the charge's key = %+v, want a replay", rr)
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 400, 0, 0) // charged once
	}
	s, err := b.Commit(t.Context(), first.ID, 400)
	if err != nil || !s.Replayed || s.Actual != 400 {
		t.Fatalf("Commit of the charge = %+v, %v; want a replay", s, err)
	}
	if _, err := b.Commit(t.Context(), first.ID, 401); !errors.Is(err, budget.ErrCommitConflict) {
		t.Fatalf("Commit with another amount: %v, want ErrCommitConflict", err)
	}
	if err := b.Release(t.Context(), first.ID); !errors.Is(err, budget.ErrAlreadyCommitted) {
		t.Fatalf("Release of the charge: %v, want ErrAlreadyCommitted", err)
	}
	other := req
	other.Amount = 401
	if _, err := budget.Charge(t.Context(), b, other); !errors.Is(err, budget.ErrIdempotencyConflict) {
		t.Fatalf("Charge reusing the key for another amount: %v, want ErrIdempotencyConflict", err)
	}
	wantUsage(t, b, org, scopes[0], 400, 0, 0)
}

func testChargeWarnOff(t *testing.T, b budget.Budget) {
	org := Name("org")
	warn := budget.Scope{ID: Name("agent"), Limit: 100, Mode: budget.ModeWarn, Period: budget.Lifetime()}
	off := budget.Scope{ID: Name("team"), Limit: 0, Mode: budget.ModeOff, Period: budget.Lifetime()}
	top := hard(org, 1000)
	r := mustCharge(t, b, budget.ReserveRequest{Scopes: []budget.Scope{warn, off, top}, Amount: 250})
	if !r.Allowed || !r.Warned || !r.Scopes[0].Exceeded {
		t.Fatalf("Charge past a warn limit = %+v, want allowed and warned", r)
	}
	wantUsage(t, b, org, warn, 250, 0, 0) // warn mode charges in full, no overage
	wantUsage(t, b, org, top, 250, 0, 0)
	if u := mustUsage(t, b, org, off); u.Spent != 0 || u.Reserved != 0 {
		t.Fatalf("off scope usage %+v, want nothing recorded", u)
	}
}

func testChargeConcurrent(t *testing.T, b budget.Budget) {
	org := Name("org")
	const limit, amount, workers, tries = 1000, 7, 8, 40
	scopes := []budget.Scope{hard(Name("agent"), limit), hard(org, 5*limit)}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tries {
				r, err := budget.Charge(t.Context(), b, budget.ReserveRequest{Scopes: scopes, Amount: amount})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// 320 tries of 7 would be 2240: exactly floor(1000/7) fit.
	if got := admitted.Load(); got != limit/amount {
		t.Fatalf("%d charges admitted, want %d", got, limit/amount)
	}
	wantUsage(t, b, org, scopes[0], limit/amount*amount, 0, 0)
}
