package budget

import "context"

// A Charger is a Budget that can also charge a known cost in one atomic
// step: Reserve and Commit of the same amount, without a reservation left
// in between (one round trip on Redis instead of two). MemBudget and
// budget/redis.Budget implement it; use [Charge] to call it on any Budget.
type Charger interface {
	// Charge admits req.Amount against every scope of req as Reserve does
	// and, if admitted, charges it at once as Commit(req.Amount) would
	// (so a hard scope is charged in full: the amount fit). Denial is a
	// Reservation with Allowed false and changes nothing.
	//
	// An admitted charge reports State StateCommitted. Without an
	// IdempotencyKey nothing is kept for it: ID is empty and there is
	// nothing to commit or release. With one, the charge is remembered
	// like a committed reservation (ID set; a retry with the key returns
	// it with Replayed set; Commit of the ID with the same amount replays).
	// req.TTL is validated but unused except for that retention.
	Charge(ctx context.Context, req ReserveRequest) (Reservation, error)
}

// Charge charges a known cost against b: with b's Charge when b is a
// [Charger] (one atomic step), otherwise with Reserve then Commit of
// req.Amount (two steps; never an overspend, but a failure between them
// leaves a reservation that expires after its TTL, and the result has the
// reservation's ID).
func Charge(ctx context.Context, b Budget, req ReserveRequest) (Reservation, error) {
	if c, ok := b.(Charger); ok {
		return c.Charge(ctx, req)
	}
	return chargeInSteps(ctx, b, req)
}

// chargeInSteps is Reserve then Commit of req.Amount.
func chargeInSteps(ctx context.Context, b Budget, req ReserveRequest) (Reservation, error) {
	r, err := b.Reserve(ctx, req)
	if err != nil || !r.Allowed || r.Replayed {
		return r, err
	}
	if _, err := b.Commit(ctx, r.ID, req.Amount); err != nil {
		return Reservation{}, err
	}
	r.State = StateCommitted
	return r, nil
}

var _ Charger = (*observed)(nil)

// Charge reports like a Reserve (denied, warned, failed) followed by a
// Commit (success with the amount) when admitted. If the observed Budget
// is not a Charger it falls back as [Charge] does.
func (o *observed) Charge(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if _, ok := o.b.(Charger); !ok {
		return chargeInSteps(ctx, o, req) // through o's Reserve and Commit: reported there
	}
	r, err := Charge(ctx, o.b, req)
	switch {
	case err != nil:
		o.fn(NewUsageEvent(EventReserve, StatusError, o.now(), req.Meta))
	case !r.Allowed:
		e := NewUsageEvent(EventReserve, StatusDenied, o.now(), req.Meta)
		e.Scope = r.DeniedBy
		o.fn(e)
	case !r.Replayed:
		if r.Warned {
			e := NewUsageEvent(EventReserve, StatusSuccess, o.now(), req.Meta)
			e.ReservationID, e.Warned = r.ID, true
			o.fn(e)
		}
		e := NewUsageEvent(EventCommit, StatusSuccess, o.now(), req.Meta)
		e.ReservationID, e.CostMicros = r.ID, req.Amount
		o.fn(e)
	}
	return r, err
}
