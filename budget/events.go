package budget

import (
	"context"
	"strconv"
	"time"

	"github.com/talosgo/talos/contracts"
)

// EventKind says which operation produced a UsageEvent.
type EventKind uint8

const (
	// EventReserve: a reservation was denied, warned or failed.
	EventReserve EventKind = iota + 1
	// EventCommit: a reservation was settled (or the settle failed).
	EventCommit
	// EventRateLimit: a rate limiter denied a request, failed, or decided
	// with its fallback or fail-open policy.
	EventRateLimit
)

// Status values of a UsageEvent, as in the contract usage_event enum.
const (
	StatusSuccess = "success"
	StatusDenied  = "denied"
	StatusError   = "error"
)

// A UsageEvent reports spend or a limit decision, for the audit log. Its
// JSON form (MarshalJSON) is the contract ai_gateway usage_event object;
// the fields without a contract counterpart (Kind, ReservationID, Scope,
// Warned, Degraded) are for Go consumers only and are not serialized.
type UsageEvent struct {
	EventID   string // UUIDv7
	Timestamp time.Time
	Kind      EventKind
	Status    string // StatusSuccess, StatusDenied or StatusError
	// CostMicros is the cost in micro-units (the settled actual for
	// commits, zero otherwise); cost_usd in JSON.
	CostMicros    int64
	Meta          Meta
	ReservationID string
	// Scope is the scope that denied (or, for a rate limit, the limiter
	// surface).
	Scope string
	// Warned marks a reservation admitted past a warn-mode limit.
	Warned bool
	// Degraded marks a rate-limit decision made by the fallback limiter or
	// the fail-open policy because the store failed.
	Degraded bool
}

// NewUsageEvent returns an event with a fresh UUIDv7 EventID and the given
// timestamp.
func NewUsageEvent(kind EventKind, status string, at time.Time, meta Meta) UsageEvent {
	return UsageEvent{EventID: contracts.NewUUIDv7At(at), Timestamp: at.UTC(), Kind: kind, Status: status, Meta: meta}
}

// MarshalJSON encodes the contract usage_event: event_id, timestamp
// (RFC 3339, UTC, milliseconds), key_id, team_id, and when set org_id,
// surface, model_group_id, mcp_server_id; cost_usd converted exactly from
// micro-units; status. Keys are in RFC 8785 order.
func (e UsageEvent) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, `{"cost_usd":`...)
	b = AppendUSD(b, e.CostMicros)
	b = append(b, `,"event_id":`...)
	b = strconv.AppendQuote(b, e.EventID)
	b = append(b, `,"key_id":`...)
	b = strconv.AppendQuote(b, e.Meta.KeyID)
	if e.Meta.MCPServerID != "" {
		b = append(b, `,"mcp_server_id":`...)
		b = strconv.AppendQuote(b, e.Meta.MCPServerID)
	}
	if e.Meta.ModelGroupID != "" {
		b = append(b, `,"model_group_id":`...)
		b = strconv.AppendQuote(b, e.Meta.ModelGroupID)
	}
	if e.Meta.OrgID != "" {
		b = append(b, `,"org_id":`...)
		b = strconv.AppendQuote(b, e.Meta.OrgID)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendQuote(b, e.Status)
	if e.Meta.Surface != "" {
		b = append(b, `,"surface":`...)
		b = strconv.AppendQuote(b, e.Meta.Surface)
	}
	b = append(b, `,"team_id":`...)
	b = strconv.AppendQuote(b, e.Meta.TeamID)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendQuote(b, e.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	return append(b, '}'), nil
}

// Observe returns a Budget that calls b and reports to fn: a UsageEvent
// for every denied, warned or failed Reserve, and for every Commit
// (status success with the actual cost, or error). Release and Usage are
// not reported. fn runs synchronously on the caller's goroutine and must
// not block; it is how budgets reach the audit log without this package
// importing it. now is the clock for event timestamps (nil: time.Now).
func Observe(b Budget, fn func(UsageEvent), now func() time.Time) Budget {
	if now == nil {
		now = time.Now
	}
	return &observed{b: b, fn: fn, now: now}
}

type observed struct {
	b   Budget
	fn  func(UsageEvent)
	now func() time.Time
}

var _ Budget = (*observed)(nil)

func (o *observed) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	r, err := o.b.Reserve(ctx, req)
	switch {
	case err != nil:
		o.fn(NewUsageEvent(EventReserve, StatusError, o.now(), req.Meta))
	case !r.Allowed:
		e := NewUsageEvent(EventReserve, StatusDenied, o.now(), req.Meta)
		e.Scope = r.DeniedBy
		o.fn(e)
	case r.Warned && !r.Replayed:
		e := NewUsageEvent(EventReserve, StatusSuccess, o.now(), req.Meta)
		e.ReservationID, e.Warned = r.ID, true
		o.fn(e)
	}
	return r, err
}

func (o *observed) Commit(ctx context.Context, id string, actual int64) (Settlement, error) {
	s, err := o.b.Commit(ctx, id, actual)
	switch {
	case err != nil:
		e := NewUsageEvent(EventCommit, StatusError, o.now(), Meta{})
		e.ReservationID = id
		o.fn(e)
	case !s.Replayed:
		e := NewUsageEvent(EventCommit, StatusSuccess, o.now(), s.Meta)
		e.ReservationID, e.CostMicros = id, s.Actual
		o.fn(e)
	}
	return s, err
}

func (o *observed) Release(ctx context.Context, id string) error { return o.b.Release(ctx, id) }

func (o *observed) Usage(ctx context.Context, group string, s Scope) (Usage, error) {
	return o.b.Usage(ctx, group, s)
}
