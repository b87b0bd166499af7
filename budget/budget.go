package budget

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/talosgo/talos/contracts"
)

// A Budget reserves spend atomically against an ordered list of scopes and
// later settles it. Implementations must be safe for concurrent use and
// must make every method a single atomic step on the store: a reservation
// is admitted only if every hard scope has room, and then it is charged to
// every scope at once.
//
// Over budget is not an error: Reserve returns a Reservation with Allowed
// false. An error means only that the store could not answer (or that the
// request was invalid); callers must then deny.
type Budget interface {
	// Reserve checks and charges req.Amount against every scope of req.
	// See [ReserveRequest] for idempotency and expiry.
	Reserve(ctx context.Context, req ReserveRequest) (Reservation, error)
	// Commit charges the actual cost of a reservation and frees the rest.
	// Committing twice with the same actual returns the first Settlement
	// (Replayed set); with a different actual it returns ErrCommitConflict.
	Commit(ctx context.Context, id string, actual int64) (Settlement, error)
	// Release frees a reservation without charging it. Releasing a released
	// or expired reservation is a no-op; releasing a committed one returns
	// ErrAlreadyCommitted.
	Release(ctx context.Context, id string) error
	// Usage reports a scope's spend, reservations and overage in its
	// current period. group is the scope group the scope is used in. When
	// the back-end holds nothing for the scope in that group (the group is
	// unknown, or the scope was never reserved against in it, or its state
	// was forgotten) it returns an error matching ErrUnknownGroup, together
	// with the Usage of an unused scope (ID, Limit, Remaining = Limit,
	// ResetAt) for callers that show unused scopes as empty.
	Usage(ctx context.Context, group string, s Scope) (Usage, error)
}

// Mode says how a scope's limit is enforced. The zero value is ModeHard.
type Mode uint8

const (
	// ModeHard denies a reservation that does not fit, and charges a
	// Commit only up to the limit (the excess is recorded as overage).
	ModeHard Mode = iota
	// ModeWarn admits every reservation and charges in full, but marks the
	// Reservation (Warned) and the scope (Exceeded) when the limit is passed.
	ModeWarn
	// ModeOff neither enforces nor records anything for the scope.
	ModeOff
)

// String returns "hard", "warn" or "off".
func (m Mode) String() string {
	switch m {
	case ModeHard:
		return "hard"
	case ModeWarn:
		return "warn"
	case ModeOff:
		return "off"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "hard", "warn" or "off" (the reference's budget_mode
// values). Any other text is a TALOS_INVALID_INPUT error.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "hard":
		return ModeHard, nil
	case "warn":
		return ModeWarn, nil
	case "off":
		return ModeOff, nil
	}
	return 0, contracts.New(contracts.CodeInvalidInput, "budget: unknown mode (want hard, warn or off)")
}

// A Scope is one budget a reservation is charged to, such as an agent, a
// team or an organization. The scope's state is identified by its ID and
// Period within a group: changing a scope's Period starts new counters.
type Scope struct {
	// ID names the scope, e.g. "agent:did:key:z6Mk…" or "team:t1". It is
	// 1 to MaxIDLen bytes of A–Z a–z 0–9 and . _ : @ / + = -.
	ID string
	// Limit is the cap per period in micro-units (1 USD = 1,000,000). The
	// zero value denies every non-zero amount in hard mode.
	Limit int64
	// Mode is how Limit is enforced; the zero value is ModeHard.
	Mode Mode
	// Period is the accounting period; the zero value is Monthly().
	Period Period
}

// Meta describes who and what a reservation is for. It is stored with the
// reservation, returned in Settlement and copied into UsageEvents; it never
// affects admission. Every field is optional and at most MaxMetaLen bytes.
type Meta struct {
	KeyID        string // virtual key or agent key ID
	TeamID       string
	OrgID        string
	Surface      string // "", "llm" or "mcp" (the usage_event enum)
	ModelGroupID string
	MCPServerID  string
}

// A ReserveRequest asks to hold Amount against every scope in Scopes.
type ReserveRequest struct {
	// Scopes are charged together, narrowest first (agent → team → org).
	// At least one, at most MaxScopes, with distinct (ID, Period).
	Scopes []Scope
	// Group is the scope group: all of a group's state lives together (one
	// Redis Cluster slot), and a scope must always be used in the same
	// group. If empty, the ID of the last (broadest) scope is used.
	Group string
	// Amount is the estimated cost in micro-units, 0 to MaxAmount.
	Amount int64
	// IdempotencyKey, if set, makes Reserve safe to retry: while the first
	// reservation made with the key is remembered (its TTL plus the
	// back-end's retention), Reserve returns it again (Replayed set) and
	// charges nothing. Reusing a key with a different request returns
	// ErrIdempotencyConflict. At most MaxIdempotencyKeyLen bytes.
	IdempotencyKey string
	// TTL is how long the reservation holds its amount before it is
	// released automatically; zero means DefaultTTL. MinTTL to MaxTTL.
	TTL time.Duration
	// Meta is recorded with the reservation.
	Meta Meta
}

// State is the lifecycle state of a reservation.
type State uint8

const (
	// StateNone is the state of a denied reservation: nothing was held.
	StateNone State = iota
	// StateActive holds its amount until committed, released or expired.
	StateActive
	// StateCommitted has been charged.
	StateCommitted
	// StateReleased was released without a charge.
	StateReleased
	// StateExpired passed its TTL and its amount was released.
	StateExpired
)

// String returns the state's lower-case name.
func (s State) String() string {
	switch s {
	case StateNone:
		return "none"
	case StateActive:
		return "active"
	case StateCommitted:
		return "committed"
	case StateReleased:
		return "released"
	case StateExpired:
		return "expired"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// ScopeStatus reports one scope at the time of a Reserve.
type ScopeStatus struct {
	ID    string
	Mode  Mode
	Limit int64
	// Used is the spend in the current period and Reserved the amount held
	// by other active reservations, both before this reservation.
	Used, Reserved int64
	// Exceeded is true when Used+Reserved+Amount passes Limit (the scope
	// denied the reservation in hard mode, or warned in warn mode).
	Exceeded bool
}

// A Reservation is the result of Reserve.
type Reservation struct {
	// ID identifies the reservation for Commit and Release. Empty when
	// the reservation was denied.
	ID string
	// Allowed reports whether the amount is held. When false, nothing
	// changed and DeniedBy names the first hard scope that had no room.
	Allowed  bool
	DeniedBy string
	// Warned is true when a warn-mode scope was exceeded.
	Warned bool
	// Replayed is true when an earlier reservation with the same
	// IdempotencyKey was returned instead of a new one.
	Replayed bool
	// State is StateActive for a new reservation; a replay reports the
	// current state of the earlier one.
	State     State
	Amount    int64
	ExpiresAt time.Time
	// Scopes reports every scope of the request, in request order. For a
	// replay it is nil.
	Scopes []ScopeStatus
}

// Err returns nil when r is allowed and otherwise a *contracts.Error with
// code BUDGET_EXCEEDED naming the scope that denied it.
func (r Reservation) Err() error {
	if r.Allowed {
		return nil
	}
	e := contracts.New(contracts.CodeBudgetExceeded, "budget: scope "+strconv.Quote(r.DeniedBy)+" exceeded")
	for _, s := range r.Scopes {
		if s.ID == r.DeniedBy && s.Exceeded {
			rem := max(0, s.Limit-s.Used-s.Reserved)
			e.Details = map[string]any{
				"scope":         s.ID,
				"limit_usd":     USD(s.Limit),
				"remaining_usd": USD(rem),
			}
			break
		}
	}
	return e
}

// ScopeCharge reports what one scope was charged by a Commit.
type ScopeCharge struct {
	ID string
	// Charged is the amount added to the scope's spend. In hard mode it is
	// at most the room left under the limit.
	Charged int64
	// Overage is Actual − Charged: cost that happened but did not fit under
	// a hard limit. It is recorded in the scope's Usage.Overage.
	Overage int64
}

// A Settlement is the result of Commit.
type Settlement struct {
	ID     string
	Actual int64
	// Expired is true when the reservation had expired before the Commit;
	// the actual was then charged like an unreserved cost (up to the limit
	// in hard mode, the rest as overage).
	Expired bool
	// Replayed is true when the reservation was already committed with the
	// same actual; nothing was charged again.
	Replayed bool
	// Scopes reports the charge per scope (scopes in ModeOff are omitted).
	Scopes []ScopeCharge
	Meta   Meta
}

// Overage returns the largest overage across scopes.
func (s Settlement) Overage() int64 {
	var o int64
	for _, c := range s.Scopes {
		o = max(o, c.Overage)
	}
	return o
}

// Usage reports one scope in its current period.
type Usage struct {
	ID    string
	Limit int64
	// Spent is the charged spend in the current period (for a rolling
	// window: in the buckets the window covers).
	Spent int64
	// Reserved is the amount held by active reservations (including ones
	// made in an earlier period that are not yet settled).
	Reserved int64
	// Overage is the total overage recorded for the scope (all periods).
	Overage int64
	// Remaining is Limit − Spent − Reserved, or zero when that is negative.
	Remaining int64
	// ResetAt is the end of the current calendar period; zero for rolling
	// windows and lifetime scopes.
	ResetAt time.Time
}

// Package sentinels. Each is an immutable [contracts.Sentinel]: errors.Is
// matches the sentinel itself, and also the contract-code sentinel (for
// example contracts.ErrInvalidInput); errors.As finds a *contracts.Error.
var (
	// ErrIdempotencyConflict: an idempotency key was reused for a
	// different request.
	ErrIdempotencyConflict = contracts.NewSentinel(contracts.CodeInvalidInput, "budget: idempotency key reused with a different request")
	// ErrCommitConflict: a committed reservation was committed again with
	// a different actual.
	ErrCommitConflict = contracts.NewSentinel(contracts.CodeInvalidInput, "budget: reservation already committed with a different actual")
	// ErrAlreadyCommitted: Release of a committed reservation.
	ErrAlreadyCommitted = contracts.NewSentinel(contracts.CodeInvalidInput, "budget: reservation already committed")
	// ErrReleased: Commit of a released reservation.
	ErrReleased = contracts.NewSentinel(contracts.CodeInvalidInput, "budget: reservation was released")
	// ErrUnknownReservation: the reservation does not exist or is no
	// longer remembered (code NOT_FOUND).
	ErrUnknownReservation = contracts.NewSentinel(contracts.CodeNotFound, "budget: unknown reservation")
	// ErrUnknownGroup: Usage found no state for the scope in the group
	// (code NOT_FOUND).
	ErrUnknownGroup = contracts.NewSentinel(contracts.CodeNotFound, "budget: unknown group or scope")
)

func invalid(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "budget: "+msg)
}

// idChars marks the bytes allowed in IDs: A–Z a–z 0–9 . _ : @ / + = -.
var idChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:@/+=-" {
		t[c] = true
	}
	return t
}()

// validID reports whether s is a well-formed scope ID, group or key.
func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChars[s[i]] {
			return false
		}
	}
	return true
}

// ValidateID returns a TALOS_INVALID_INPUT error unless s is a valid scope
// ID, group name or limiter key (see Scope.ID).
func ValidateID(what, s string) error {
	if !validID(s) {
		return invalid(what + " must be 1 to " + strconv.Itoa(MaxIDLen) + " bytes of A-Z a-z 0-9 . _ : @ / + = -")
	}
	return nil
}

// Validate checks a scope. It is called by Reserve and Usage.
func (s Scope) Validate() error {
	if err := ValidateID("scope ID", s.ID); err != nil {
		return err
	}
	if s.Limit < 0 || s.Limit > MaxAmount {
		return invalid("scope limit out of range")
	}
	if s.Mode > ModeOff {
		return invalid("unknown scope mode")
	}
	return s.Period.validate()
}

// Validate checks a request and reports the problem as a
// TALOS_INVALID_INPUT error. Back-ends call it before touching the store.
func (r *ReserveRequest) Validate() error {
	if len(r.Scopes) == 0 || len(r.Scopes) > MaxScopes {
		return invalid("a reservation needs 1 to " + strconv.Itoa(MaxScopes) + " scopes")
	}
	for i, s := range r.Scopes {
		if err := s.Validate(); err != nil {
			return err
		}
		for _, o := range r.Scopes[:i] {
			if o.ID == s.ID && o.Period == s.Period {
				return invalid("duplicate scope " + strconv.Quote(s.ID))
			}
		}
	}
	if err := ValidateID("group", r.GroupName()); err != nil {
		return err
	}
	if r.Amount < 0 || r.Amount > MaxAmount {
		return invalid("amount out of range")
	}
	if len(r.IdempotencyKey) > MaxIdempotencyKeyLen {
		return invalid("idempotency key too long")
	}
	if r.TTL != 0 && (r.TTL < MinTTL || r.TTL > MaxTTL) {
		return invalid("TTL out of range")
	}
	return r.Meta.validate()
}

func (m *Meta) validate() error {
	for _, f := range [...]string{m.KeyID, m.TeamID, m.OrgID, m.Surface, m.ModelGroupID, m.MCPServerID} {
		if len(f) > MaxMetaLen {
			return invalid("meta field too long")
		}
	}
	switch m.Surface {
	case "", "llm", "mcp":
	default:
		return invalid(`meta surface must be "llm" or "mcp"`)
	}
	return nil
}

// GroupName returns r.Group, or the last scope's ID when it is empty.
func (r *ReserveRequest) GroupName() string {
	if r.Group != "" || len(r.Scopes) == 0 {
		return r.Group
	}
	return r.Scopes[len(r.Scopes)-1].ID
}

// EffectiveTTL returns r.TTL, or DefaultTTL when it is zero.
func (r *ReserveRequest) EffectiveTTL() time.Duration {
	if r.TTL == 0 {
		return DefaultTTL
	}
	return r.TTL
}

// Fingerprint returns a digest of everything in r that affects admission
// (group, scopes, amount, TTL), so that a back-end can tell a retry from a
// different request reusing the same idempotency key. Meta is excluded.
func (r *ReserveRequest) Fingerprint() string {
	h := sha256.New()
	var b [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	num := func(v int64) {
		binary.BigEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	str("talos-budget-reserve-v1")
	str(r.GroupName())
	num(r.Amount)
	num(int64(r.EffectiveTTL()))
	num(int64(len(r.Scopes)))
	for _, s := range r.Scopes {
		str(s.ID)
		num(s.Limit)
		num(int64(s.Mode))
		num(int64(s.Period.kind))
		num(int64(s.Period.window))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
