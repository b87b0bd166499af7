// Package budgettest is the conformance suite every budget.Budget and
// budget.RateStore back-end runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		budgettest.Run(t, func(t *testing.T) budget.Budget { return newBudget(t) })
//		budgettest.RunRates(t, func(t *testing.T) budget.RateStore { return newRates(t) })
//	}
//
// Every test uses fresh random group names and keys, so back-ends may share
// one store between tests. Some tests sleep for up to about a second to let
// TTLs and rolling windows pass, in parallel subtests.
package budgettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// Name returns a fresh random ID with the given prefix.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func randN(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// Run exercises a Budget. newBudget is called once per subtest.
func Run(t *testing.T, newBudget func(t *testing.T) budget.Budget) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b budget.Budget)
	}{
		{"ReserveCommit", testReserveCommit},
		{"HardDenyChangesNothing", testHardDeny},
		{"AtomicAcrossScopes", testAtomicScopes},
		{"Warn", testWarn},
		{"Off", testOff},
		{"Overage", testOverage},
		{"Idempotency", testIdempotency},
		{"CommitReleaseStates", testStates},
		{"UnknownAndMalformedIDs", testIDs},
		{"TTLExpiry", testTTL},
		{"InvalidInput", testInvalid},
		{"CalendarPeriods", testCalendar},
		{"RollingWindow", testRolling},
		{"ZeroAmount", testZeroAmount},
		{"UsageUnknownGroup", testUsageUnknownGroup},
		{"NoOverspendConcurrent", func(t *testing.T, b budget.Budget) {
			NoOverspend(t, []budget.Budget{b}, 64, 1500*time.Millisecond)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBudget(t))
		})
	}
	runCharge(t, newBudget)
}

func hard(id string, limit int64) budget.Scope {
	return budget.Scope{ID: id, Limit: limit, Mode: budget.ModeHard, Period: budget.Lifetime()}
}

func mustReserve(t *testing.T, b budget.Budget, req budget.ReserveRequest) budget.Reservation {
	t.Helper()
	r, err := b.Reserve(t.Context(), req)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return r
}

// mustUsage returns the usage of s in group. A scope the back-end holds
// nothing for (ErrUnknownGroup) must come with the usage of an unused scope,
// which is returned.
func mustUsage(t *testing.T, b budget.Budget, group string, s budget.Scope) budget.Usage {
	t.Helper()
	u, err := b.Usage(t.Context(), group, s)
	if errors.Is(err, budget.ErrUnknownGroup) {
		checkUnused(t, u, err, s)
		return u
	}
	if err != nil {
		t.Fatalf("Usage(%s): %v", s.ID, err)
	}
	return u
}

// checkUnused checks the Usage returned with ErrUnknownGroup.
func checkUnused(t *testing.T, u budget.Usage, err error, s budget.Scope) {
	t.Helper()
	if !errors.Is(err, budget.ErrUnknownGroup) || !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("Usage(%s) error %v, want ErrUnknownGroup (NOT_FOUND)", s.ID, err)
	}
	var ce *contracts.Error
	if !errors.As(err, &ce) || ce.Code != contracts.CodeNotFound {
		t.Fatalf("Usage(%s) error %v is not a *contracts.Error of code NOT_FOUND", s.ID, err)
	}
	if u.ID != s.ID || u.Limit != s.Limit || u.Spent != 0 || u.Reserved != 0 || u.Overage != 0 || u.Remaining != s.Limit {
		t.Fatalf("Usage(%s) with ErrUnknownGroup = %+v, want an unused scope", s.ID, u)
	}
}

// testUsageUnknownGroup: Usage of a group nothing was reserved in says so
// (ErrUnknownGroup, with the usage of an unused scope), never zeros with a
// nil error; once reserved against, the scope is known; a scope never used
// in a known group, and another group, are still unknown.
func testUsageUnknownGroup(t *testing.T, b budget.Budget) {
	ctx := t.Context()
	org, other := Name("org"), Name("org")
	s := hard(org, 1000)
	u, err := b.Usage(ctx, org, s)
	checkUnused(t, u, err, s)
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 100})
	if !r.Allowed {
		t.Fatalf("Reserve = %+v", r)
	}
	if u, err := b.Usage(ctx, org, s); err != nil || u.Reserved != 100 || u.Remaining != 900 {
		t.Fatalf("Usage after a reservation = %+v, %v", u, err)
	}
	if _, err := b.Commit(ctx, r.ID, 40); err != nil {
		t.Fatal(err)
	}
	if u, err := b.Usage(ctx, org, s); err != nil || u.Spent != 40 || u.Reserved != 0 {
		t.Fatalf("Usage after commit = %+v, %v", u, err)
	}
	u, err = b.Usage(ctx, other, hard(other, 7))
	checkUnused(t, u, err, hard(other, 7))
	never := hard(Name("agent"), 5)
	u, err = b.Usage(ctx, org, never)
	checkUnused(t, u, err, never)
}

func wantUsage(t *testing.T, b budget.Budget, group string, s budget.Scope, spent, reserved, overage int64) {
	t.Helper()
	u := mustUsage(t, b, group, s)
	if u.Spent != spent || u.Reserved != reserved || u.Overage != overage {
		t.Fatalf("Usage(%s) = spent %d reserved %d overage %d, want %d %d %d",
			s.ID, u.Spent, u.Reserved, u.Overage, spent, reserved, overage)
	}
	if want := max(0, s.Limit-spent-reserved); u.Remaining != want || u.Limit != s.Limit {
		t.Fatalf("Usage(%s) remaining %d limit %d, want %d %d", s.ID, u.Remaining, u.Limit, want, s.Limit)
	}
}

func testReserveCommit(t *testing.T, b budget.Budget) {
	org := Name("org")
	scopes := []budget.Scope{hard(Name("agent"), 1000), hard(Name("team"), 5000), hard(org, 10000)}
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 300, Meta: budget.Meta{KeyID: "k1", TeamID: "t1", Surface: "llm"}})
	if !r.Allowed || r.State != budget.StateActive || r.Amount != 300 || r.Replayed || r.Warned {
		t.Fatalf("Reserve = %+v, want an allowed active reservation", r)
	}
	if r.Err() != nil {
		t.Fatalf("Err() = %v for an allowed reservation", r.Err())
	}
	if g, _, err := budget.ParseReservationID(r.ID); err != nil || g != org {
		t.Fatalf("ParseReservationID(%q) = %q, %v; want group %q", r.ID, g, err, org)
	}
	if !r.ExpiresAt.After(time.Now().Add(budget.DefaultTTL-time.Minute)) || r.ExpiresAt.After(time.Now().Add(budget.DefaultTTL+time.Minute)) {
		t.Fatalf("ExpiresAt %v, want about now+%v", r.ExpiresAt, budget.DefaultTTL)
	}
	if len(r.Scopes) != 3 || r.Scopes[0].ID != scopes[0].ID || r.Scopes[2].Limit != 10000 || r.Scopes[1].Used != 0 {
		t.Fatalf("Scopes = %+v", r.Scopes)
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 0, 300, 0)
	}
	st, err := b.Commit(t.Context(), r.ID, 200)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != r.ID || st.Actual != 200 || st.Expired || st.Replayed || len(st.Scopes) != 3 || st.Overage() != 0 {
		t.Fatalf("Settlement = %+v", st)
	}
	if st.Meta.KeyID != "k1" || st.Meta.TeamID != "t1" || st.Meta.Surface != "llm" {
		t.Fatalf("Settlement.Meta = %+v, want the reservation's", st.Meta)
	}
	for i, c := range st.Scopes {
		if c.ID != scopes[i].ID || c.Charged != 200 || c.Overage != 0 {
			t.Fatalf("Scopes[%d] = %+v, want 200 charged to %s", i, c, scopes[i].ID)
		}
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 200, 0, 0)
	}
	// A second reservation sees the first one's spend.
	r2 := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 800})
	if !r2.Allowed || r2.Scopes[0].Used != 200 || r2.Scopes[0].Reserved != 0 {
		t.Fatalf("second Reserve = %+v", r2)
	}
	r3 := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 1})
	if r3.Allowed || r3.DeniedBy != scopes[0].ID || r3.Scopes[0].Used != 200 || r3.Scopes[0].Reserved != 800 {
		t.Fatalf("third Reserve = %+v, want denied by the agent scope", r3)
	}
}

func testHardDeny(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 600})
	if !r.Allowed {
		t.Fatal("first reservation denied")
	}
	d := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 401})
	if d.Allowed || d.ID != "" || d.State != budget.StateNone || d.DeniedBy != s.ID || !d.Scopes[0].Exceeded {
		t.Fatalf("Reserve over the limit = %+v, want denied", d)
	}
	err := d.Err()
	if !errors.Is(err, contracts.ErrBudgetExceeded) || contracts.CodeOf(err) != contracts.CodeBudgetExceeded ||
		contracts.HTTPStatus(contracts.CodeOf(err)) != 429 {
		t.Fatalf("Err() = %v, want BUDGET_EXCEEDED", err)
	}
	var ce *contracts.Error
	if !errors.As(err, &ce) || ce.Details["remaining_usd"] != "0.0004" || ce.Details["limit_usd"] != "0.001" {
		t.Fatalf("Err() details = %v", ce.Details)
	}
	wantUsage(t, b, s.ID, s, 0, 600, 0)
	if ok := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 400}); !ok.Allowed {
		t.Fatal("reservation of exactly the remaining amount denied")
	}
	wantUsage(t, b, s.ID, s, 0, 1000, 0)
}

func testAtomicScopes(t *testing.T, b budget.Budget) {
	org := Name("org")
	agent, team := hard(Name("agent"), 1000), hard(Name("team"), 500)
	orgS := hard(org, 100000)
	scopes := []budget.Scope{agent, team, orgS}
	d := mustReserve(t, b, budget.ReserveRequest{Scopes: scopes, Amount: 700})
	if d.Allowed || d.DeniedBy != team.ID || d.Scopes[0].Exceeded || !d.Scopes[1].Exceeded || d.Scopes[2].Exceeded {
		t.Fatalf("Reserve = %+v, want denied by the team scope only", d)
	}
	for _, s := range scopes {
		wantUsage(t, b, org, s, 0, 0, 0)
	}
	// Several hard scopes exceeded: DeniedBy is the first in request order.
	agent.Limit = 10
	d = mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{agent, team, orgS}, Amount: 700})
	if d.Allowed || d.DeniedBy != agent.ID {
		t.Fatalf("DeniedBy = %q, want %q", d.DeniedBy, agent.ID)
	}
}

func testWarn(t *testing.T, b budget.Budget) {
	org := Name("org")
	warn := budget.Scope{ID: Name("team"), Limit: 100, Mode: budget.ModeWarn, Period: budget.Lifetime()}
	orgS := hard(org, 10000)
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{warn, orgS}, Amount: 500})
	if !r.Allowed || !r.Warned || !r.Scopes[0].Exceeded || r.Scopes[1].Exceeded {
		t.Fatalf("Reserve = %+v, want allowed and warned by the warn scope", r)
	}
	st, err := b.Commit(t.Context(), r.ID, 450)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scopes[0].Charged != 450 || st.Scopes[0].Overage != 0 {
		t.Fatalf("warn scope charge = %+v, want all 450", st.Scopes[0])
	}
	wantUsage(t, b, org, warn, 450, 0, 0)
	// Under the limit, warn does not warn.
	w2 := budget.Scope{ID: Name("team"), Limit: 1000, Mode: budget.ModeWarn, Period: budget.Lifetime()}
	if r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{w2, orgS}, Amount: 10}); !r.Allowed || r.Warned {
		t.Fatalf("Reserve under a warn limit = %+v", r)
	}
	// A hard denial wins over a warning.
	h := hard(Name("agent"), 1)
	if r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{h, warn, orgS}, Amount: 10}); r.Allowed || r.DeniedBy != h.ID {
		t.Fatalf("Reserve = %+v, want denied by the hard scope", r)
	}
}

func testOff(t *testing.T, b budget.Budget) {
	org := Name("org")
	off := budget.Scope{ID: Name("key"), Limit: 0, Mode: budget.ModeOff, Period: budget.Lifetime()}
	orgS := hard(org, 1000)
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{off, orgS}, Amount: 500})
	if !r.Allowed || r.Warned || r.Scopes[0].Exceeded {
		t.Fatalf("Reserve = %+v, want allowed (off scope ignored)", r)
	}
	wantUsage(t, b, org, off, 0, 0, 0)
	st, err := b.Commit(t.Context(), r.ID, 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Scopes) != 1 || st.Scopes[0].ID != org || st.Scopes[0].Charged != 500 {
		t.Fatalf("Settlement.Scopes = %+v, want only the org scope", st.Scopes)
	}
	wantUsage(t, b, org, off, 0, 0, 0)
	wantUsage(t, b, org, orgS, 500, 0, 0)
}

func testOverage(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	req := budget.ReserveRequest{Scopes: []budget.Scope{s}}
	req.Amount = 400
	r1 := mustReserve(t, b, req)
	req.Amount = 300
	r2 := mustReserve(t, b, req)
	if !r1.Allowed || !r2.Allowed {
		t.Fatal("reservations denied")
	}
	// r1 overruns: room is 1000 − 0 spent − 300 still held by r2.
	st, err := b.Commit(t.Context(), r1.ID, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scopes[0].Charged != 700 || st.Scopes[0].Overage != 800 || st.Overage() != 800 {
		t.Fatalf("overrun commit = %+v, want 700 charged and 800 overage", st.Scopes)
	}
	wantUsage(t, b, s.ID, s, 700, 300, 800)
	st, err = b.Commit(t.Context(), r2.ID, 300)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scopes[0].Charged != 300 || st.Scopes[0].Overage != 0 {
		t.Fatalf("commit = %+v", st.Scopes)
	}
	wantUsage(t, b, s.ID, s, 1000, 0, 800)
	// A warn scope beside it is charged in full.
	w := budget.Scope{ID: Name("team"), Limit: 10, Mode: budget.ModeWarn, Period: budget.Lifetime()}
	r3 := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{w, s}, Amount: 0})
	st, err = b.Commit(t.Context(), r3.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scopes[0].Charged != 50 || st.Scopes[1].Charged != 0 || st.Scopes[1].Overage != 50 {
		t.Fatalf("commit = %+v, want warn charged 50, hard 0 with overage 50", st.Scopes)
	}
}

func testIdempotency(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	req := budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 300, IdempotencyKey: Name("idem")}
	r1 := mustReserve(t, b, req)
	r2 := mustReserve(t, b, req)
	if !r1.Allowed || r1.Replayed || !r2.Allowed || !r2.Replayed || r2.ID != r1.ID || r2.State != budget.StateActive || r2.Amount != 300 {
		t.Fatalf("Reserve twice = %+v, %+v; want the same reservation replayed", r1, r2)
	}
	wantUsage(t, b, s.ID, s, 0, 300, 0)
	other := req
	other.Amount = 301
	if _, err := b.Reserve(t.Context(), other); !errors.Is(err, budget.ErrIdempotencyConflict) || !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("Reserve with a reused key = %v, want ErrIdempotencyConflict", err)
	}
	// Meta does not take part in the fingerprint.
	same := req
	same.Meta.KeyID = "other"
	if r := mustReserve(t, b, same); !r.Replayed || r.ID != r1.ID {
		t.Fatalf("Reserve with different Meta = %+v, want replay", r)
	}
	if _, err := b.Commit(t.Context(), r1.ID, 250); err != nil {
		t.Fatal(err)
	}
	r3 := mustReserve(t, b, req)
	if !r3.Replayed || r3.ID != r1.ID || r3.State != budget.StateCommitted {
		t.Fatalf("Reserve after Commit = %+v, want the committed reservation", r3)
	}
	wantUsage(t, b, s.ID, s, 250, 0, 0)

	// Concurrent retries of one key hold the amount once.
	s2 := hard(Name("agent"), 1000)
	req2 := budget.ReserveRequest{Scopes: []budget.Scope{s2}, Amount: 100, IdempotencyKey: Name("idem")}
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() {
			r, err := b.Reserve(context.Background(), req2)
			if err != nil || !r.Allowed {
				t.Errorf("concurrent Reserve = %+v, %v", r, err)
			}
			ids[i] = r.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent retries returned different IDs %q and %q", ids[0], id)
		}
	}
	wantUsage(t, b, s2.ID, s2, 0, 100, 0)
}

func testStates(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	req := budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 100}
	r := mustReserve(t, b, req)
	st1, err := b.Commit(t.Context(), r.ID, 80)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := b.Commit(t.Context(), r.ID, 80)
	if err != nil || !st2.Replayed || st2.Scopes[0].Charged != st1.Scopes[0].Charged {
		t.Fatalf("second Commit = %+v, %v; want the first settlement replayed", st2, err)
	}
	if _, err := b.Commit(t.Context(), r.ID, 81); !errors.Is(err, budget.ErrCommitConflict) {
		t.Fatalf("Commit with another actual = %v, want ErrCommitConflict", err)
	}
	if err := b.Release(t.Context(), r.ID); !errors.Is(err, budget.ErrAlreadyCommitted) {
		t.Fatalf("Release after Commit = %v, want ErrAlreadyCommitted", err)
	}
	wantUsage(t, b, s.ID, s, 80, 0, 0)

	r = mustReserve(t, b, req)
	wantUsage(t, b, s.ID, s, 80, 100, 0)
	if err := b.Release(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(t.Context(), r.ID); err != nil {
		t.Fatalf("second Release = %v, want nil", err)
	}
	if _, err := b.Commit(t.Context(), r.ID, 10); !errors.Is(err, budget.ErrReleased) {
		t.Fatalf("Commit after Release = %v, want ErrReleased", err)
	}
	wantUsage(t, b, s.ID, s, 80, 0, 0)
	if _, err := b.Commit(t.Context(), r.ID, -1); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("Commit(-1) = %v, want TALOS_INVALID_INPUT", err)
	}
}

func testIDs(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}) // the group exists
	for _, id := range []string{s.ID + "~0123456789abcdef0123456789abcdef", Name("nogroup") + "~0123456789abcdef0123456789abcdef"} {
		if _, err := b.Commit(t.Context(), id, 1); !errors.Is(err, budget.ErrUnknownReservation) || contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Fatalf("Commit(%q) = %v, want ErrUnknownReservation", id, err)
		}
		if err := b.Release(t.Context(), id); !errors.Is(err, budget.ErrUnknownReservation) {
			t.Fatalf("Release(%q) = %v, want ErrUnknownReservation", id, err)
		}
	}
	for _, id := range []string{"", "~", "x~", s.ID + "~0123456789ABCDEF0123456789ABCDEF", "a b~0123456789abcdef0123456789abcdef", "{g}~0123456789abcdef0123456789abcdef"} {
		if _, err := b.Commit(t.Context(), id, 1); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("Commit(%q) = %v, want TALOS_INVALID_INPUT", id, err)
		}
		if err := b.Release(t.Context(), id); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("Release(%q) = %v, want TALOS_INVALID_INPUT", id, err)
		}
	}
	wantUsage(t, b, s.ID, s, 0, 1, 0)
}

func testTTL(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	key := Name("idem")
	r1 := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 600, TTL: 150 * time.Millisecond, IdempotencyKey: key})
	r2 := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 300, TTL: 150 * time.Millisecond})
	r3 := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 100, TTL: time.Minute})
	if !r1.Allowed || !r2.Allowed || !r3.Allowed {
		t.Fatal("reservations denied")
	}
	if d := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); d.Allowed {
		t.Fatal("reservation past the limit allowed")
	}
	time.Sleep(300 * time.Millisecond)
	wantUsage(t, b, s.ID, s, 0, 100, 0)
	if err := b.Release(t.Context(), r2.ID); err != nil {
		t.Fatalf("Release of an expired reservation = %v, want nil", err)
	}
	// The idempotency key still names the expired reservation.
	if r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 600, TTL: 150 * time.Millisecond, IdempotencyKey: key}); !r.Replayed || r.State != budget.StateExpired {
		t.Fatalf("replay after expiry = %+v, want the expired reservation", r)
	}
	// A late commit charges what fits: room is 1000 − 100 held by r3.
	st, err := b.Commit(t.Context(), r1.ID, 950)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Expired || st.Scopes[0].Charged != 900 || st.Scopes[0].Overage != 50 {
		t.Fatalf("late Commit = %+v, want expired, 900 charged, 50 overage", st)
	}
	wantUsage(t, b, s.ID, s, 900, 100, 50)
}

func testInvalid(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 1000)
	long := make([]byte, budget.MaxIDLen+1)
	for i := range long {
		long[i] = 'a'
	}
	nine := make([]budget.Scope, budget.MaxScopes+1)
	for i := range nine {
		nine[i] = hard(Name("s"), 1)
	}
	bad := []budget.ReserveRequest{
		{},
		{Scopes: nine, Amount: 1},
		{Scopes: []budget.Scope{s}, Amount: -1},
		{Scopes: []budget.Scope{s}, Amount: budget.MaxAmount + 1},
		{Scopes: []budget.Scope{{ID: "bad id", Limit: 1}}, Amount: 1},
		{Scopes: []budget.Scope{{ID: "a{b}", Limit: 1}}, Amount: 1},
		{Scopes: []budget.Scope{{ID: string(long), Limit: 1}}, Amount: 1},
		{Scopes: []budget.Scope{{ID: "a", Limit: -1}}, Amount: 1},
		{Scopes: []budget.Scope{{ID: "a", Limit: 1, Mode: 7}}, Amount: 1},
		{Scopes: []budget.Scope{{ID: "a", Limit: 1, Period: budget.Rolling(time.Millisecond)}}, Amount: 1},
		{Scopes: []budget.Scope{s, s}, Amount: 1},
		{Scopes: []budget.Scope{s}, Amount: 1, TTL: time.Microsecond},
		{Scopes: []budget.Scope{s}, Amount: 1, TTL: budget.MaxTTL + 1},
		{Scopes: []budget.Scope{s}, Amount: 1, Group: "g~x"},
		{Scopes: []budget.Scope{s}, Amount: 1, IdempotencyKey: string(make([]byte, budget.MaxIdempotencyKeyLen+1))},
		{Scopes: []budget.Scope{s}, Amount: 1, Meta: budget.Meta{Surface: "web"}},
	}
	for i, req := range bad {
		if r, err := b.Reserve(t.Context(), req); !errors.Is(err, contracts.ErrInvalidInput) || r.Allowed {
			t.Errorf("bad request %d: Reserve = %+v, %v; want TALOS_INVALID_INPUT", i, r, err)
		}
	}
	wantUsage(t, b, s.ID, s, 0, 0, 0)
	if _, err := b.Usage(t.Context(), "bad group", s); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Errorf("Usage with a bad group = %v", err)
	}
}

func testCalendar(t *testing.T, b budget.Budget) {
	org := Name("org")
	daily := budget.Scope{ID: Name("agent"), Limit: 1000, Period: budget.Daily()}
	monthly := budget.Scope{ID: daily.ID, Limit: 5000, Period: budget.Monthly()}
	// The same ID with two periods is two scopes.
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{daily, monthly}, Group: org, Amount: 700})
	if !r.Allowed {
		t.Fatalf("Reserve = %+v", r)
	}
	if _, err := b.Commit(t.Context(), r.ID, 700); err != nil {
		t.Fatal(err)
	}
	if d := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{daily, monthly}, Group: org, Amount: 301}); d.Allowed || d.DeniedBy != daily.ID || d.Scopes[1].Exceeded {
		t.Fatalf("Reserve = %+v, want denied by the daily scope", d)
	}
	now := time.Now()
	ud := mustUsage(t, b, org, daily)
	um := mustUsage(t, b, org, monthly)
	if ud.Spent != 700 || um.Spent != 700 || ud.Remaining != 300 || um.Remaining != 4300 {
		t.Fatalf("usage daily %+v monthly %+v", ud, um)
	}
	if !ud.ResetAt.After(now) || ud.ResetAt.After(now.Add(26*time.Hour)) {
		t.Fatalf("daily ResetAt %v, want within a day", ud.ResetAt)
	}
	if !um.ResetAt.After(now) || um.ResetAt.After(now.Add(32*24*time.Hour)) || um.ResetAt.Before(ud.ResetAt) {
		t.Fatalf("monthly ResetAt %v (daily %v)", um.ResetAt, ud.ResetAt)
	}
	if lt := mustUsage(t, b, org, hard(daily.ID, 1)); lt.Spent != 0 || !lt.ResetAt.IsZero() {
		t.Fatalf("lifetime usage of an unused scope = %+v", lt)
	}
}

func testRolling(t *testing.T, b budget.Budget) {
	s := budget.Scope{ID: Name("agent"), Limit: 1000, Period: budget.Rolling(time.Second)}
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1000})
	if _, err := b.Commit(t.Context(), r.ID, 900); err != nil {
		t.Fatal(err)
	}
	if u := mustUsage(t, b, s.ID, s); u.Spent != 900 || !u.ResetAt.IsZero() {
		t.Fatalf("Usage = %+v", u)
	}
	if d := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 101}); d.Allowed {
		t.Fatal("Reserve past a rolling limit allowed")
	}
	time.Sleep(1100 * time.Millisecond)
	wantUsage(t, b, s.ID, s, 0, 0, 0)
	if r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1000}); !r.Allowed {
		t.Fatal("Reserve after the window passed denied")
	}
}

func testZeroAmount(t *testing.T, b budget.Budget) {
	s := hard(Name("agent"), 0)
	r := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 0})
	if !r.Allowed {
		t.Fatal("zero reservation against a zero limit denied")
	}
	if d := mustReserve(t, b, budget.ReserveRequest{Scopes: []budget.Scope{s}, Amount: 1}); d.Allowed {
		t.Fatal("non-zero reservation against a zero limit allowed")
	}
	st, err := b.Commit(t.Context(), r.ID, 5)
	if err != nil || st.Scopes[0].Charged != 0 || st.Scopes[0].Overage != 5 {
		t.Fatalf("Commit = %+v, %v; want 0 charged, 5 overage", st, err)
	}
}

// Totals are what one run of Hammer observed.
type Totals struct {
	Charged   int64 // sum of Charged on the shared scope
	Overage   int64 // sum of Overage on the shared scope
	Actual    int64 // sum of actuals committed
	Commits   int64
	Releases  int64
	Abandoned int64
	Denied    int64
	Replays   int64
}

// Add adds b to a.
func (a *Totals) Add(b Totals) {
	a.Charged += b.Charged
	a.Overage += b.Overage
	a.Actual += b.Actual
	a.Commits += b.Commits
	a.Releases += b.Releases
	a.Abandoned += b.Abandoned
	a.Denied += b.Denied
	a.Replays += b.Replays
}

// HammerTTL is the TTL of the reservations Hammer abandons.
const HammerTTL = 200 * time.Millisecond

// Hammer runs workers goroutines against b for about d: each reserves a
// random amount against its own agent scope and the shared scope org
// (hard, limit), retries some reservations with the same idempotency key
// (checking that they are replayed, not charged again), then commits a
// random actual (sometimes above the reservation), releases, or abandons
// the reservation to its TTL. It returns what the shared scope was charged
// according to the Settlements. It reports errors through t.Errorf and
// may be called from several processes against one store.
func Hammer(t testing.TB, b budget.Budget, org budget.Scope, workers int, d time.Duration) Totals {
	var total Totals
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range workers {
		agent := hard(Name("agent"), org.Limit/int64(max(1, workers/8)))
		agent.Period = org.Period
		wg.Go(func() {
			var tot Totals
			defer func() {
				mu.Lock()
				total.Add(tot)
				mu.Unlock()
			}()
			for i := 0; time.Now().Before(deadline) && !stop.Load(); i++ {
				req := budget.ReserveRequest{Scopes: []budget.Scope{agent, org}, Group: org.ID, Amount: 1 + randN(org.Limit/10)}
				if i%3 == 0 {
					req.IdempotencyKey = Name("k" + string(rune('a'+w%26)))
				}
				action := randN(10)
				if action == 9 {
					req.TTL = HammerTTL
				}
				r, err := b.Reserve(context.Background(), req)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					stop.Store(true)
					return
				}
				if !r.Allowed {
					tot.Denied++
					continue
				}
				if req.IdempotencyKey != "" {
					again, err := b.Reserve(context.Background(), req)
					if err != nil || !again.Replayed || again.ID != r.ID {
						t.Errorf("retry with the same key = %+v, %v; want replay of %s", again, err, r.ID)
						stop.Store(true)
						return
					}
					tot.Replays++
				}
				switch {
				case action == 9:
					tot.Abandoned++
				case action == 8:
					if err := b.Release(context.Background(), r.ID); err != nil {
						t.Errorf("Release: %v", err)
						stop.Store(true)
						return
					}
					tot.Releases++
				default:
					actual := randN(req.Amount + 1)
					if action == 7 {
						actual = req.Amount + randN(req.Amount+1) // overrun
					}
					st, err := b.Commit(context.Background(), r.ID, actual)
					if err != nil {
						t.Errorf("Commit: %v", err)
						stop.Store(true)
						return
					}
					if i%5 == 0 { // a retried commit charges nothing
						again, err := b.Commit(context.Background(), r.ID, actual)
						if err != nil || !again.Replayed {
							t.Errorf("retried Commit = %+v, %v", again, err)
							stop.Store(true)
							return
						}
					}
					c := st.Scopes[1]
					if c.ID != org.ID || c.Charged+c.Overage != actual || c.Charged < 0 || c.Overage < 0 {
						t.Errorf("Settlement = %+v for actual %d", st, actual)
					}
					tot.Charged += c.Charged
					tot.Overage += c.Overage
					tot.Actual += actual
					tot.Commits++
				}
			}
		})
	}
	wg.Wait()
	return total
}

// NoOverspend runs Hammer with workers goroutines spread over the budgets
// (which must share one store) against one shared hard scope, then waits
// for abandoned reservations to expire and checks that the stored spend
// equals the sum of the charges, never exceeds the limit, and that nothing
// is left reserved.
func NoOverspend(t *testing.T, bs []budget.Budget, workers int, d time.Duration) {
	org := hard(Name("org"), 2_000_000)
	var total Totals
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, b := range bs {
		n := workers / len(bs)
		if i == 0 {
			n += workers % len(bs)
		}
		wg.Go(func() {
			tot := Hammer(t, b, org, n, d)
			mu.Lock()
			total.Add(tot)
			mu.Unlock()
		})
	}
	wg.Wait()
	CheckNoOverspend(t, bs[0], org, total)
}

// CheckNoOverspend waits for abandoned reservations to expire, then checks
// the shared scope against the totals all Hammer runs reported.
func CheckNoOverspend(t *testing.T, b budget.Budget, org budget.Scope, total Totals) {
	t.Helper()
	time.Sleep(HammerTTL + 50*time.Millisecond)
	u := mustUsage(t, b, org.ID, org)
	t.Logf("shared scope: spent %d of %d, overage %d; %d commits, %d releases, %d abandoned, %d denied, %d idempotent replays",
		u.Spent, org.Limit, u.Overage, total.Commits, total.Releases, total.Abandoned, total.Denied, total.Replays)
	if u.Spent > org.Limit {
		t.Errorf("OVERSPENT: spent %d > limit %d", u.Spent, org.Limit)
	}
	if u.Spent != total.Charged {
		t.Errorf("stored spend %d != sum of charges %d (lost or double-charged spend)", u.Spent, total.Charged)
	}
	if u.Overage != total.Overage {
		t.Errorf("stored overage %d != sum of overages %d", u.Overage, total.Overage)
	}
	if total.Charged+total.Overage != total.Actual {
		t.Errorf("charged %d + overage %d != actual %d", total.Charged, total.Overage, total.Actual)
	}
	if u.Reserved != 0 {
		t.Errorf("%d still reserved after all reservations were settled or expired", u.Reserved)
	}
	if total.Denied == 0 || total.Commits == 0 {
		t.Errorf("the run did not reach the limit (%d denials, %d commits): the test proves nothing", total.Denied, total.Commits)
	}
}
