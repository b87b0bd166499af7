package budget

import (
	"container/heap"
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// MemBudgetConfig configures a MemBudget. The zero value is usable.
type MemBudgetConfig struct {
	// Location aligns daily and monthly periods to its midnight. If nil,
	// time.UTC is used.
	Location *time.Location
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
	// Retention is how long closed reservations and idempotency keys are
	// remembered. If zero, DefaultRetention is used; at most MaxRetention.
	Retention time.Duration
}

// MemBudget is the in-memory Budget. It is safe for concurrent use: state is
// sharded by scope group, and each operation holds its group's shard lock
// for the whole check-and-charge, so it is atomic across the request's
// scopes.
//
// Expired reservations are released lazily, whenever their group is next
// used, and by Sweep. MemBudget starts no goroutine.
type MemBudget struct {
	loc       *time.Location
	now       func() time.Time
	retention int64 // microseconds
	seed      maphash.Seed
	shards    [memShards]memShard
}

const memShards = 64

type memShard struct {
	mu     sync.Mutex // guards groups and everything reachable from it
	groups map[string]*memGroup
	_      [40]byte // keep shards on separate cache lines
}

var _ Budget = (*MemBudget)(nil)

// NewMemBudget returns an empty in-memory budget.
func NewMemBudget(cfg MemBudgetConfig) (*MemBudget, error) {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < 0 || cfg.Retention > MaxRetention {
		return nil, invalid("retention out of range")
	}
	m := &MemBudget{loc: cfg.Location, now: cfg.Now, retention: cfg.Retention.Microseconds(), seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].groups = make(map[string]*memGroup)
	}
	return m, nil
}

type scopeKey struct {
	id     string
	period Period
}

type memScope struct {
	reserved int64
	overage  int64
	slot     int64           // calendar: start of the current period (µs)
	spent    int64           // calendar and lifetime: spend in slot
	buckets  map[int64]int64 // rolling: bucket index → spend
}

type memRef struct {
	st     *memScope
	id     string
	mode   Mode
	limit  int64
	period Period
}

type memRes struct {
	id     string
	idem   string
	fp     string
	state  State
	amount int64
	expUs  int64
	refs   []memRef
	meta   Meta
	settle Settlement
}

type memGroup struct {
	scopes map[scopeKey]*memScope
	res    map[string]*memRes // by ID
	idem   map[string]string  // idempotency key → ID
	exp    timedHeap          // active reservations by expiry
	gc     timedHeap          // closed reservations by end of retention
}

type timed struct {
	at int64
	id string
}

type timedHeap []timed

func (h timedHeap) Len() int           { return len(h) }
func (h timedHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timedHeap) Push(x any)        { *h = append(*h, x.(timed)) }
func (h *timedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *MemBudget) shard(group string) *memShard {
	return &m.shards[maphash.String(m.seed, group)%memShards]
}

func (sh *memShard) groupLocked(name string, create bool) *memGroup {
	g := sh.groups[name]
	if g == nil && create {
		g = &memGroup{scopes: make(map[scopeKey]*memScope), res: make(map[string]*memRes), idem: make(map[string]string)}
		sh.groups[name] = g
	}
	return g
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return contracts.Wrap(contracts.CodeTransportTimeout, "budget: context done", err).WithRetryable(true)
	}
	return nil
}

// Reserve implements Budget.
func (m *MemBudget) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if err := ctxErr(ctx); err != nil {
		return Reservation{}, err
	}
	if err := req.Validate(); err != nil {
		return Reservation{}, err
	}
	group := req.GroupName()
	var fp string
	if req.IdempotencyKey != "" {
		fp = req.Fingerprint()
	}
	id, err := NewReservationID(group)
	if err != nil {
		return Reservation{}, err
	}
	now := m.now()
	nowUs := now.UnixMicro()

	sh := m.shard(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g := sh.groupLocked(group, true)
	m.sweepLocked(g, nowUs)
	res, _, err := m.reserveLocked(g, &req, id, fp, now, nowUs)
	return res, err
}

// Charge implements Charger: Reserve and Commit of req.Amount under one
// lock.
func (m *MemBudget) Charge(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if err := ctxErr(ctx); err != nil {
		return Reservation{}, err
	}
	if err := req.Validate(); err != nil {
		return Reservation{}, err
	}
	group := req.GroupName()
	var fp string
	if req.IdempotencyKey != "" {
		fp = req.Fingerprint()
	}
	id, err := NewReservationID(group)
	if err != nil {
		return Reservation{}, err
	}
	now := m.now()
	nowUs := now.UnixMicro()
	sh := m.shard(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g := sh.groupLocked(group, true)
	m.sweepLocked(g, nowUs)
	res, r, err := m.reserveLocked(g, &req, id, fp, now, nowUs)
	if err != nil || r == nil {
		return res, err // denied or replayed
	}
	if _, err := m.commitLocked(g, r, req.Amount, now, nowUs); err != nil {
		return Reservation{}, err
	}
	res.State = StateCommitted
	if r.idem == "" {
		delete(g.res, id) // nothing to commit or release later
		res.ID = ""
	}
	return res, nil
}

// reserveLocked is Reserve after validation, with the group locked and
// swept. r is the new reservation, nil for a denial or a replay.
func (m *MemBudget) reserveLocked(g *memGroup, req *ReserveRequest, id, fp string, now time.Time, nowUs int64) (_ Reservation, r *memRes, _ error) {
	if req.IdempotencyKey != "" {
		if prev := g.res[g.idem[req.IdempotencyKey]]; prev != nil {
			if prev.fp != fp {
				return Reservation{}, nil, ErrIdempotencyConflict
			}
			return Reservation{ID: prev.id, Allowed: true, Replayed: true, State: prev.state,
				Amount: prev.amount, ExpiresAt: time.UnixMicro(prev.expUs)}, nil, nil
		}
	}

	res := Reservation{Amount: req.Amount, Scopes: make([]ScopeStatus, len(req.Scopes))}
	scopes := make([]*memScope, len(req.Scopes))
	for i, s := range req.Scopes {
		st := ScopeStatus{ID: s.ID, Mode: s.Mode, Limit: s.Limit}
		if s.Mode != ModeOff {
			sc := g.scopes[scopeKey{s.ID, s.Period}]
			if sc == nil {
				sc = &memScope{}
				g.scopes[scopeKey{s.ID, s.Period}] = sc
			}
			scopes[i] = sc
			st.Used = m.usedLocked(sc, s.Period, now, nowUs)
			st.Reserved = sc.reserved
			st.Exceeded = exceeds(st.Used, st.Reserved, req.Amount, s.Limit)
			if st.Exceeded {
				if s.Mode == ModeHard && res.DeniedBy == "" {
					res.DeniedBy = s.ID
				}
				if s.Mode == ModeWarn {
					res.Warned = true
				}
			}
		}
		res.Scopes[i] = st
	}
	if res.DeniedBy != "" {
		res.Warned = false
		return res, nil, nil
	}

	r = &memRes{id: id, idem: req.IdempotencyKey, fp: fp, state: StateActive, amount: req.Amount,
		expUs: nowUs + req.EffectiveTTL().Microseconds(), meta: req.Meta}
	for i, s := range req.Scopes {
		if s.Mode == ModeOff {
			continue
		}
		scopes[i].reserved += req.Amount
		r.refs = append(r.refs, memRef{st: scopes[i], id: s.ID, mode: s.Mode, limit: s.Limit, period: s.Period})
	}
	g.res[id] = r
	if r.idem != "" {
		g.idem[r.idem] = id
	}
	heap.Push(&g.exp, timed{r.expUs, id})

	res.ID, res.Allowed, res.State, res.ExpiresAt = id, true, StateActive, time.UnixMicro(r.expUs)
	return res, r, nil
}

// exceeds reports whether used+reserved+amount > limit without overflow
// (all arguments are non-negative, limit ≤ MaxAmount).
func exceeds(used, reserved, amount, limit int64) bool {
	return used > limit || reserved > limit-used || amount > limit-used-reserved
}

// Commit implements Budget.
func (m *MemBudget) Commit(ctx context.Context, id string, actual int64) (Settlement, error) {
	if err := ctxErr(ctx); err != nil {
		return Settlement{}, err
	}
	if actual < 0 || actual > MaxAmount {
		return Settlement{}, invalid("actual out of range")
	}
	group, _, err := ParseReservationID(id)
	if err != nil {
		return Settlement{}, err
	}
	now := m.now()
	nowUs := now.UnixMicro()

	sh := m.shard(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g := sh.groupLocked(group, false)
	if g == nil {
		return Settlement{}, ErrUnknownReservation
	}
	m.sweepLocked(g, nowUs)
	r := g.res[id]
	if r == nil {
		return Settlement{}, ErrUnknownReservation
	}
	return m.commitLocked(g, r, actual, now, nowUs)
}

// commitLocked is Commit of r with its group locked and swept.
func (m *MemBudget) commitLocked(g *memGroup, r *memRes, actual int64, now time.Time, nowUs int64) (Settlement, error) {
	id := r.id
	expired := false
	switch r.state {
	case StateCommitted:
		if r.settle.Actual != actual {
			return Settlement{}, ErrCommitConflict
		}
		s := r.settle
		s.Scopes = slices.Clone(s.Scopes)
		s.Replayed = true
		return s, nil
	case StateReleased:
		return Settlement{}, ErrReleased
	case StateActive:
		for _, ref := range r.refs {
			ref.st.reserved -= r.amount
		}
	case StateExpired:
		expired = true
	}
	s := Settlement{ID: id, Actual: actual, Expired: expired, Meta: r.meta, Scopes: make([]ScopeCharge, len(r.refs))}
	for i, ref := range r.refs {
		charge := actual
		used := m.usedLocked(ref.st, ref.period, now, nowUs)
		if ref.mode == ModeHard {
			room := max(0, ref.limit-used-ref.st.reserved)
			charge = min(actual, room)
		}
		m.chargeLocked(ref.st, ref.period, now, nowUs, charge)
		ref.st.overage += actual - charge
		s.Scopes[i] = ScopeCharge{ID: ref.id, Charged: charge, Overage: actual - charge}
	}
	r.state = StateCommitted
	r.settle = s
	heap.Push(&g.gc, timed{nowUs + m.retention, id})
	s.Scopes = slices.Clone(s.Scopes)
	return s, nil
}

// Release implements Budget.
func (m *MemBudget) Release(ctx context.Context, id string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	group, _, err := ParseReservationID(id)
	if err != nil {
		return err
	}
	nowUs := m.now().UnixMicro()
	sh := m.shard(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g := sh.groupLocked(group, false)
	if g == nil {
		return ErrUnknownReservation
	}
	m.sweepLocked(g, nowUs)
	r := g.res[id]
	if r == nil {
		return ErrUnknownReservation
	}
	switch r.state {
	case StateCommitted:
		return ErrAlreadyCommitted
	case StateActive:
		for _, ref := range r.refs {
			ref.st.reserved -= r.amount
		}
		r.state = StateReleased
		heap.Push(&g.gc, timed{nowUs + m.retention, id})
	}
	return nil
}

// Usage implements Budget.
func (m *MemBudget) Usage(ctx context.Context, group string, s Scope) (Usage, error) {
	if err := ctxErr(ctx); err != nil {
		return Usage{}, err
	}
	if err := ValidateID("group", group); err != nil {
		return Usage{}, err
	}
	if err := s.Validate(); err != nil {
		return Usage{}, err
	}
	now := m.now()
	u := Usage{ID: s.ID, Limit: s.Limit}
	if _, end, ok := s.Period.Bounds(m.loc, now); ok {
		u.ResetAt = end
	}
	sh := m.shard(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	known := false
	if g := sh.groupLocked(group, false); g != nil {
		m.sweepLocked(g, now.UnixMicro())
		if sc := g.scopes[scopeKey{s.ID, s.Period}]; sc != nil {
			known = true
			u.Spent = m.usedLocked(sc, s.Period, now, now.UnixMicro())
			u.Reserved = sc.reserved
			u.Overage = sc.overage
		}
	}
	u.Remaining = max(0, u.Limit-u.Spent-u.Reserved)
	if !known {
		return u, ErrUnknownGroup
	}
	return u, nil
}

// Sweep releases every expired reservation and forgets closed ones past
// their retention, in all groups, and drops groups left with no state.
// Lazy release on access already keeps admission exact; Sweep only bounds
// memory for groups that are no longer used.
func (m *MemBudget) Sweep(ctx context.Context) error {
	nowUs := m.now().UnixMicro()
	for i := range m.shards {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		sh := &m.shards[i]
		sh.mu.Lock()
		for name, g := range sh.groups {
			m.sweepLocked(g, nowUs)
			if len(g.res) == 0 && g.idle() {
				delete(sh.groups, name)
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

func (g *memGroup) idle() bool {
	for _, sc := range g.scopes {
		if sc.reserved != 0 || sc.spent != 0 || sc.overage != 0 || len(sc.buckets) != 0 {
			return false
		}
	}
	return true
}

// sweepLocked expires active reservations whose TTL has passed and forgets
// closed ones whose retention has passed.
func (m *MemBudget) sweepLocked(g *memGroup, nowUs int64) {
	for len(g.exp) > 0 && g.exp[0].at <= nowUs {
		t := heap.Pop(&g.exp).(timed)
		r := g.res[t.id]
		if r == nil || r.state != StateActive {
			continue
		}
		for _, ref := range r.refs {
			ref.st.reserved -= r.amount
		}
		r.state = StateExpired
		heap.Push(&g.gc, timed{r.expUs + m.retention, t.id})
	}
	for len(g.gc) > 0 && g.gc[0].at <= nowUs {
		t := heap.Pop(&g.gc).(timed)
		r := g.res[t.id]
		if r == nil {
			continue
		}
		delete(g.res, t.id)
		if r.idem != "" && g.idem[r.idem] == t.id {
			delete(g.idem, r.idem)
		}
	}
}

// usedLocked returns the scope's spend in the period containing now,
// advancing calendar periods and pruning rolling buckets.
func (m *MemBudget) usedLocked(sc *memScope, p Period, now time.Time, nowUs int64) int64 {
	switch p.kind {
	case KindLifetime:
		return sc.spent
	case KindRolling:
		w := p.BucketMicros()
		cur := nowUs / w
		var sum int64
		for b, v := range sc.buckets {
			if b <= cur-RollingBuckets {
				delete(sc.buckets, b)
				continue
			}
			sum += v
		}
		return sum
	default:
		start, _, _ := p.Bounds(m.loc, now)
		if s := start.UnixMicro(); s > sc.slot {
			sc.slot, sc.spent = s, 0
		}
		return sc.spent
	}
}

// chargeLocked adds v to the scope's spend in the current period; the
// caller has just called usedLocked with the same time.
func (m *MemBudget) chargeLocked(sc *memScope, p Period, now time.Time, nowUs int64, v int64) {
	if v == 0 {
		return
	}
	if p.kind == KindRolling {
		if sc.buckets == nil {
			sc.buckets = make(map[int64]int64)
		}
		sc.buckets[nowUs/p.BucketMicros()] += v
		return
	}
	sc.spent += v
}
