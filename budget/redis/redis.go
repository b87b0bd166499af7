package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// Client is the part of a go-redis client this package uses. Every
// go-redis client kind satisfies it: *redis.Client, *redis.ClusterClient,
// *redis.Ring and redis.UniversalClient.
type Client = goredis.Scripter

var _ Client = goredis.UniversalClient(nil)

// DefaultPrefix starts every key this package writes. The version in it
// changes if the layout does (layout v5 since this version; the marker key
// Prefix+"layout" holds the version, see [ErrLayout]).
const DefaultPrefix = "talos:budget:v5:"

// layoutVersion is the key layout these scripts read and write, stored in
// the marker key Prefix+"layout".
const layoutVersion = "5"

// oldPrefixes are the default prefixes of earlier layouts: a store using
// DefaultPrefix is also checked for data under them.
var oldPrefixes = []string{"talos:budget:v1:", "talos:budget:v2:", "talos:budget:v3:", "talos:budget:v4:"}

// ErrLayout is returned (code INTERNAL, not retryable) by every Budget
// method while the store holds budget data of another key layout under
// the configured prefix (or, with DefaultPrefix, under the default prefix
// of an earlier layout): a marker of another version, or keys the earlier
// layouts wrote. Mixing layouts would lose the old reservations and spend
// without a word, so the Budget refuses to decide until an operator has
// drained the old data (let reservations settle and calendar periods end,
// then delete the old keys) or chosen another prefix knowingly.
var ErrLayout = contracts.NewSentinel(contracts.CodeInternal, "budget/redis: the store holds budget data of another key layout")

// Config configures a Budget. The zero value is usable.
type Config struct {
	// Prefix starts every key. If empty, DefaultPrefix is used. It must
	// not contain '{' or '}'. Prefix+"layout" is the layout marker.
	Prefix string
	// Location aligns daily and monthly periods to its midnight. If nil,
	// time.UTC is used. Every process sharing a store must use the same.
	Location *time.Location
	// Retention is how long closed reservations and idempotency keys are
	// remembered. If zero, budget.DefaultRetention is used.
	Retention time.Duration
	// Timeout bounds each call to Redis. If zero, only the caller's
	// context does. A timeout is an error, and callers deny.
	Timeout time.Duration
}

// Budget is a budget.Budget on Redis. Every method is one script run on
// the server (one round trip once the script is cached; the first call
// also checks the key layout, see [Budget.CheckLayout]), atomic across
// the request's scopes because a scope group lives in one slot, and timed
// by the server's clock, so any number of processes can share a store
// without overspending. It is safe for concurrent use and starts no
// goroutines.
type Budget struct {
	c         Client
	prefix    string
	loc       *time.Location
	retention time.Duration
	timeout   time.Duration
	bc        atomic.Pointer[boundsCache]
	// keepArg and retentionArg are keepMicros and retention in µs, boxed
	// once for the script arguments.
	keepArg, retentionArg any
	layoutOK              atomic.Bool
	layoutMu              sync.Mutex
}

var _ budget.Budget = (*Budget)(nil)

// New returns a Budget on c.
func New(c Client, cfg Config) (*Budget, error) {
	if c == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "budget/redis: a client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") || len(cfg.Prefix) > budget.MaxIDLen {
		return nil, contracts.New(contracts.CodeInvalidInput, "budget/redis: prefix must be short and free of braces")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Retention == 0 {
		cfg.Retention = budget.DefaultRetention
	}
	if cfg.Retention < 0 || cfg.Retention > budget.MaxRetention || cfg.Timeout < 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "budget/redis: retention or timeout out of range")
	}
	b := &Budget{c: c, prefix: cfg.Prefix, loc: cfg.Location, retention: cfg.Retention, timeout: cfg.Timeout}
	b.keepArg, b.retentionArg = b.keepMicros(), b.retention.Microseconds()
	return b, nil
}

// keys returns the two keys of a group, its hash and its set: every budget script
// declares exactly these in KEYS.
func (b *Budget) keys(group string) []string {
	h, z := b.keyPair(group)
	return []string{h, z}
}

// keyPair returns a group's hash and set keys, cut from one string.
func (b *Budget) keyPair(group string) (h, z string) {
	n := len(b.prefix) + len(group) + 4
	var sb strings.Builder
	sb.Grow(2 * n)
	for _, suffix := range [2]byte{'h', 'z'} {
		sb.WriteString(b.prefix)
		sb.WriteByte('{')
		sb.WriteString(group)
		sb.WriteString("}:")
		sb.WriteByte(suffix)
	}
	s := sb.String()
	return s[:n], s[n:]
}

// scopeField is a scope's field in its group's hash.
func scopeField(s budget.Scope) string {
	var sb strings.Builder
	writeScopeField(&sb, &s)
	return sb.String()
}

// writeScopeField writes a scope's field name: "c:" + period tag + ":" +
// scope ID.
func writeScopeField(sb *strings.Builder, s *budget.Scope) {
	sb.WriteString("c:")
	switch s.Period.Kind() {
	case budget.KindMonthly:
		sb.WriteByte('m')
	case budget.KindDaily:
		sb.WriteByte('d')
	case budget.KindLifetime:
		sb.WriteByte('t')
	default:
		var d [20]byte
		sb.WriteByte('r')
		sb.Write(strconv.AppendInt(d[:0], s.Period.Window().Microseconds(), 10))
	}
	sb.WriteByte(':')
	sb.WriteString(s.ID)
}

// scopeIDOfField returns the scope ID in a scope field name (after
// "c:<tag>:"); ok is false for anything else.
func scopeIDOfField(f string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(f, "c:")
	if !ok {
		return "", false
	}
	_, id, ok = strings.Cut(rest, ":")
	return id, ok && id != ""
}

// bounds appends the daily then the monthly CalendarBounds around the
// local time, for the script to pick from with the server's time. They
// change once a day: the boxed arguments are cached until the local day
// ends (a cache is the same values recomputed, never a different answer).
func (b *Budget) bounds(args []any) []any {
	now := time.Now()
	us := now.UnixMicro()
	if c := b.bc.Load(); c != nil && c.from <= us && us < c.until {
		return append(args, c.args[:]...)
	}
	d, _ := budget.Daily().CalendarBounds(b.loc, now)
	m, _ := budget.Monthly().CalendarBounds(b.loc, now)
	c := &boundsCache{from: d[1], until: d[2]}
	for i, v := range d {
		c.args[i] = v
	}
	for i, v := range m {
		c.args[4+i] = v
	}
	b.bc.Store(c)
	return append(args, c.args[:]...)
}

// boundsCache holds bounds' arguments for the local day [from, until) (µs).
type boundsCache struct {
	from, until int64
	args        [8]any
}

func (b *Budget) keepMicros() int64 { return (budget.MaxTTL + b.retention).Microseconds() }

func (b *Budget) run(ctx context.Context, s *goredis.Script, keys []string, args ...any) (any, error) {
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	if !b.layoutOK.Load() {
		if err := b.CheckLayout(ctx); err != nil {
			return nil, err
		}
	}
	v, err := s.Run(ctx, b.c, keys, args...).Result()
	if err != nil {
		reload(b.c, err)
		return nil, storeError(err)
	}
	return v, nil
}

// reload asks a cluster client to fetch the slot map again (in the
// background, coalesced by go-redis) after a failure that was not a
// script's own error reply. go-redis reloads it on MOVED replies but not
// on a refused connection: without this, a client keeps dialling a
// crashed master, every decision failing closed, until
// ClusterStateReloadInterval (60 s by default) has passed, long after a
// replica took over.
func reload(c Client, err error) {
	cc, ok := c.(*goredis.ClusterClient)
	if !ok {
		return
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		if !strings.HasPrefix(msg, "CLUSTERDOWN") && !strings.HasPrefix(msg, "TRYAGAIN") && !strings.HasPrefix(msg, "READONLY") {
			return // the server answered: the slot map is not the problem
		}
	}
	cc.ReloadState(context.Background())
}

// CheckLayout verifies that the store holds no budget data of another key
// layout under the Budget's prefix and marks the prefix as layout v5 (the
// marker key Prefix+"layout"). It returns [ErrLayout] if it does, a
// TALOS_TRANSPORT error if Redis fails. Every method runs it before its
// first decision (until it succeeds once), so a Budget never mixes
// layouts; call it at start-up to refuse early. When the prefix has no
// marker yet, it scans the keyspace (every master of a cluster) once for
// keys of the earlier layouts.
func (b *Budget) CheckLayout(ctx context.Context) error {
	b.layoutMu.Lock()
	defer b.layoutMu.Unlock()
	if b.layoutOK.Load() {
		return nil
	}
	marker := []string{b.prefix + "layout"}
	v, err := layoutScript.Run(ctx, b.c, marker, "").Result()
	switch {
	case errors.Is(err, goredis.Nil):
	case err != nil:
		reload(b.c, err)
		return storeError(err)
	case v == layoutVersion:
		b.layoutOK.Store(true)
		return nil
	default:
		return ErrLayout
	}
	patterns := []string{globEscape(b.prefix) + "{*"}
	if b.prefix == DefaultPrefix {
		for _, p := range oldPrefixes {
			patterns = append(patterns, globEscape(p)+"*")
		}
	}
	old, err := b.scanOld(ctx, patterns)
	if err != nil {
		return err
	}
	if old {
		return ErrLayout
	}
	v, err = layoutScript.Run(ctx, b.c, marker, layoutVersion).Result()
	if err != nil {
		reload(b.c, err)
		return storeError(err)
	}
	if v != layoutVersion {
		return ErrLayout
	}
	b.layoutOK.Store(true)
	return nil
}

// scanOld reports whether a key matching one of patterns exists that is
// not a group key of this layout (P{g}:h or P{g}:z).
func (b *Budget) scanOld(ctx context.Context, patterns []string) (bool, error) {
	var found atomic.Bool
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		for _, pat := range patterns {
			var cursor uint64
			for {
				keys, next, err := c.Scan(ctx, cursor, pat, 10_000).Result()
				if err != nil {
					return err
				}
				for _, k := range keys {
					if !b.isGroupKey(k) {
						found.Store(true)
						return nil
					}
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
		return nil
	}
	var err error
	switch c := b.c.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	case *goredis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	case goredis.Cmdable:
		err = scan(ctx, c)
	default:
		return false, contracts.New(contracts.CodeInvalidInput, "budget/redis: the client cannot scan the keyspace, so the key layout cannot be checked")
	}
	if err != nil {
		reload(b.c, err)
		return false, storeError(err)
	}
	return found.Load(), nil
}

// isGroupKey reports whether k is a group key of this layout under the
// prefix, or a rate-limit key (P{surface:key}:rl, when Rates shares the
// prefix): not budget data of an earlier layout.
func (b *Budget) isGroupKey(k string) bool {
	rest, ok := strings.CutPrefix(k, b.prefix+"{")
	if !ok {
		return false
	}
	i := strings.LastIndex(rest, "}:")
	if i < 0 || strings.ContainsAny(rest[:i], "{}") {
		return false
	}
	suffix := rest[i+2:]
	return suffix == "h" || suffix == "z" || suffix == "rl"
}

// globEscape quotes the SCAN MATCH metacharacters in s.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// storeError wraps a Redis failure: TALOS_TRANSPORT_TIMEOUT for deadlines,
// TALOS_TRANSPORT_ERROR otherwise, both retryable.
func storeError(err error) error {
	code := contracts.CodeTransportError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		code = contracts.CodeTransportTimeout
	} else if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		code = contracts.CodeTransportTimeout
	}
	return contracts.Wrap(code, "budget/redis: store failed", err).WithRetryable(true)
}

// Reserve implements budget.Budget.
func (b *Budget) Reserve(ctx context.Context, req budget.ReserveRequest) (budget.Reservation, error) {
	if err := req.Validate(); err != nil {
		return budget.Reservation{}, err
	}
	group := req.GroupName()
	c, err := b.reserveCall(&req, group)
	if err != nil {
		return budget.Reservation{}, err
	}
	v, err := b.run(ctx, reserveScript, c.keys, c.args...)
	if err != nil {
		return budget.Reservation{}, err
	}
	return decodeReserve(v, group, c.id, &req, c.active[:c.n])
}

var _ budget.Charger = (*Budget)(nil)

// Charge implements budget.Charger: one script run that admits and charges
// req.Amount (reserve and commit of a known cost in one round trip).
func (b *Budget) Charge(ctx context.Context, req budget.ReserveRequest) (budget.Reservation, error) {
	if err := req.Validate(); err != nil {
		return budget.Reservation{}, err
	}
	group := req.GroupName()
	c, err := b.call(&req, group, req.IdempotencyKey != "")
	if err != nil {
		return budget.Reservation{}, err
	}
	v, err := b.run(ctx, chargeScript, c.keys, c.args...)
	if err != nil {
		return budget.Reservation{}, err
	}
	r, err := decodeReserve(v, group, c.id, &req, c.active[:c.n])
	if err != nil || !r.Allowed || r.Replayed {
		return r, err
	}
	r.State = budget.StateCommitted
	if req.IdempotencyKey == "" {
		r.ID = "" // nothing was recorded: nothing to commit or release
	}
	return r, nil
}

// decideCall is a reserve or charge script run: its keys and arguments,
// the reservation ID it records (group~nonce; empty without a record,
// when the nonce sent is noRecordNonce) and the request index of each
// scope sent.
type decideCall struct {
	keys   []string
	args   []any
	id     string
	active [budget.MaxScopes]int
	n      int
	// k and a back keys and args (up to 3 scopes; more get their own
	// array): one allocation for the whole call.
	k [2]string
	a [16 + 5*3]any
}

// reserveCall returns the reserve script run for a validated request.
func (b *Budget) reserveCall(req *budget.ReserveRequest, group string) (*decideCall, error) {
	return b.call(req, group, true)
}

// noRecordNonce stands in for the nonce of a Charge that stores no record
// (Charge then returns no ID).
const noRecordNonce = "00000000000000000000000000000000"

// newID returns group + "~" + 32 hex digits of randomness, in one
// allocation (budget.NewReservationID's format; the group is valid).
func newID(group string) (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", contracts.Wrap(contracts.CodeInternal, "budget: reading randomness", err)
	}
	var h [32]byte
	hex.Encode(h[:], r[:])
	var sb strings.Builder
	sb.Grow(len(group) + 1 + len(h))
	sb.WriteString(group)
	sb.WriteByte('~')
	sb.Write(h[:])
	return sb.String(), nil
}

// call is reserveCall; without record (a Charge without an idempotency
// key, which stores no record) it draws no nonce and sends no meta.
//
// ARGV (see luaDecide): nonce, amount, ttl µs, keep µs, retention µs,
// fingerprint, 8 bounds, idempotency field, meta, then mode, limit, kind,
// bucket µs and field of every scope that is not off.
func (b *Budget) call(req *budget.ReserveRequest, group string, record bool) (*decideCall, error) {
	c := &decideCall{}
	nonce := noRecordNonce
	if record {
		id, err := newID(group)
		if err != nil {
			return nil, err
		}
		c.id, nonce = id, id[len(group)+1:]
	}
	var fp, ikf string
	if req.IdempotencyKey != "" {
		fp = req.Fingerprint()
		ikf = "i:" + req.IdempotencyKey
	}
	var meta string
	if record {
		meta = encodeMeta(&req.Meta)
	}
	size := 0
	for i, s := range req.Scopes {
		if s.Mode != budget.ModeOff {
			c.active[c.n] = i
			c.n++
			size += 24 + len(s.ID)
		}
	}
	// The scope fields are cut from one string.
	var sb strings.Builder
	sb.Grow(size)
	var ends [budget.MaxScopes + 1]int
	for j, i := range c.active[:c.n] {
		writeScopeField(&sb, &req.Scopes[i])
		ends[j+1] = sb.Len()
	}
	all := sb.String()
	field := func(j int) string { return all[ends[j]:ends[j+1]] }
	for j := range c.n {
		for k := range j {
			// Rolling windows that differ below a microsecond share a
			// field: the script would count such a scope once but
			// release it twice.
			if field(k) == field(j) {
				return nil, contracts.New(contracts.CodeInvalidInput, "budget: duplicate scope "+strconv.Quote(req.Scopes[c.active[j]].ID))
			}
		}
	}
	c.k[0], c.k[1] = b.keyPair(group)
	c.keys = c.k[:]
	c.args = c.a[:0]
	if 16+5*c.n > len(c.a) {
		c.args = make([]any, 0, 16+5*c.n)
	}
	c.args = append(c.args, nonce, req.Amount, req.EffectiveTTL().Microseconds(), b.keepArg, b.retentionArg, fp)
	c.args = b.bounds(c.args)
	c.args = append(c.args, ikf, meta)
	for j, i := range c.active[:c.n] {
		s := &req.Scopes[i]
		c.args = append(c.args, int(s.Mode), s.Limit, int(s.Period.Kind()), s.Period.BucketMicros(), field(j))
	}
	return c, nil
}

// decodeReserve turns a reserve or charge script reply into a Reservation;
// id is the reservation ID the run recorded. It never panics: any
// unexpected shape is an error.
func decodeReserve(v any, group, id string, req *budget.ReserveRequest, active []int) (budget.Reservation, error) {
	r := newReply(v, "reserve", 1)
	status := r.intIn(0, -2, 2)
	if r.err != nil {
		return budget.Reservation{}, r.err
	}
	switch status {
	case -2:
		if len(r.v) != 1 {
			return budget.Reservation{}, errReply("reserve")
		}
		return budget.Reservation{}, budget.ErrIdempotencyConflict
	case 2:
		nonce := r.str(1)
		state := r.intIn(2, int64(budget.StateActive), int64(budget.StateExpired))
		amt := r.intIn(3, 0, budget.MaxAmount)
		exp := r.intIn(4, 0, 1<<53)
		if r.err != nil || len(r.v) != 5 {
			return budget.Reservation{}, errReply("reserve")
		}
		id := group + "~" + nonce
		if _, _, err := budget.ParseReservationID(id); err != nil {
			return budget.Reservation{}, errReply("reserve")
		}
		return budget.Reservation{ID: id, Allowed: true, Replayed: true, State: budget.State(state),
			Amount: amt, ExpiresAt: time.UnixMicro(exp)}, nil
	case -1:
		return budget.Reservation{}, errReply("reserve")
	}
	if len(r.v) != 3+3*len(active) {
		return budget.Reservation{}, errReply("reserve")
	}
	res := budget.Reservation{Amount: req.Amount, Scopes: make([]budget.ScopeStatus, len(req.Scopes))}
	for i, s := range req.Scopes {
		res.Scopes[i] = budget.ScopeStatus{ID: s.ID, Mode: s.Mode, Limit: s.Limit}
	}
	for j, i := range active {
		st := &res.Scopes[i]
		st.Used = r.intIn(3+3*j, 0, 1<<53)
		st.Reserved = r.intIn(4+3*j, -1<<53, 1<<53)
		st.Exceeded = r.intIn(5+3*j, 0, 1) == 1
	}
	if status == 0 {
		d := r.intIn(1, 1, int64(len(active)))
		r.intIn(2, 0, 0)
		if r.err != nil {
			return budget.Reservation{}, r.err
		}
		res.DeniedBy = req.Scopes[active[d-1]].ID
		return res, nil
	}
	res.Warned = r.intIn(1, 0, 1) == 1
	exp := r.intIn(2, 0, 1<<53)
	if r.err != nil {
		return budget.Reservation{}, r.err
	}
	res.ID = id // "" for a Charge that records nothing
	res.Allowed, res.State, res.ExpiresAt = true, budget.StateActive, time.UnixMicro(exp)
	return res, nil
}

// Commit implements budget.Budget.
func (b *Budget) Commit(ctx context.Context, id string, actual int64) (budget.Settlement, error) {
	if actual < 0 || actual > budget.MaxAmount {
		return budget.Settlement{}, contracts.New(contracts.CodeInvalidInput, "budget: actual out of range")
	}
	keys, args, err := b.commitCall(id, actual)
	if err != nil {
		return budget.Settlement{}, err
	}
	v, err := b.run(ctx, commitScript, keys, args...)
	if err != nil {
		return budget.Settlement{}, err
	}
	return decodeCommit(v, id, actual)
}

// commitCall returns the keys and arguments of a commit script run.
func (b *Budget) commitCall(id string, actual int64) ([]string, []any, error) {
	group, nonce, err := budget.ParseReservationID(id)
	if err != nil {
		return nil, nil, err
	}
	// One allocation backs the keys and the arguments.
	c := &struct {
		k [2]string
		a [12]any
	}{}
	c.k[0], c.k[1] = b.keyPair(group)
	args := append(c.a[:0], nonce, actual, b.keepArg, b.retentionArg)
	return c.k[:], b.bounds(args), nil
}

// decodeCommit turns a commit script reply into a Settlement. It never
// panics: any unexpected shape is an error.
func decodeCommit(v any, id string, actual int64) (budget.Settlement, error) {
	r := newReply(v, "commit", 1)
	status := r.intIn(0, -4, 2)
	if r.err != nil {
		return budget.Settlement{}, r.err
	}
	switch status {
	case -1, -3, -4:
		if len(r.v) != 1 {
			return budget.Settlement{}, errReply("commit")
		}
		switch status {
		case -1:
			return budget.Settlement{}, budget.ErrUnknownReservation
		case -3:
			return budget.Settlement{}, budget.ErrCommitConflict
		}
		return budget.Settlement{}, budget.ErrReleased
	case 1, 2:
	default:
		return budget.Settlement{}, errReply("commit")
	}
	expired := r.intIn(1, 0, 1) == 1
	meta, ok := decodeMeta(r.str(2))
	fields := r.str(3)
	n := len(r.v) - 4
	if r.err != nil || !ok || n < 0 || n > budget.MaxScopes || (n == 0) != (fields == "") {
		return budget.Settlement{}, errReply("commit")
	}
	s := budget.Settlement{ID: id, Actual: actual, Expired: expired, Replayed: status == 2, Meta: meta,
		Scopes: make([]budget.ScopeCharge, n)}
	for i := range n {
		f, rest, more := strings.Cut(fields, " ")
		if more != (i < n-1) {
			return budget.Settlement{}, errReply("commit")
		}
		fields = rest
		c := r.intIn(4+i, 0, actual)
		if r.err != nil {
			return budget.Settlement{}, r.err
		}
		id, ok := scopeIDOfField(f)
		if !ok {
			return budget.Settlement{}, errReply("commit")
		}
		s.Scopes[i] = budget.ScopeCharge{ID: id, Charged: c, Overage: actual - c}
	}
	return s, nil
}

// encodeMeta encodes a reservation's meta as the one opaque string the
// record keeps: "" when every field is empty, else each of the six fields
// as its length in decimal, ':' and its bytes.
func encodeMeta(m *budget.Meta) string {
	f := [6]string{m.KeyID, m.TeamID, m.OrgID, m.Surface, m.ModelGroupID, m.MCPServerID}
	n := 0
	for _, s := range f {
		n += len(s)
	}
	if n == 0 {
		return ""
	}
	buf := make([]byte, 0, n+6*4)
	for _, s := range f {
		buf = strconv.AppendInt(buf, int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
	}
	return string(buf)
}

// decodeMeta is encodeMeta's inverse, strict: canonical lengths of at most
// budget.MaxMetaLen, exactly six fields, nothing after them, and not six
// empty fields (that meta is "").
func decodeMeta(s string) (budget.Meta, bool) {
	if s == "" {
		return budget.Meta{}, true
	}
	var f [6]string
	for i := range f {
		c := strings.IndexByte(s, ':')
		if c < 1 || c > 3 || (c > 1 && s[0] == '0') {
			return budget.Meta{}, false
		}
		n := 0
		for _, d := range []byte(s[:c]) {
			if d < '0' || d > '9' {
				return budget.Meta{}, false
			}
			n = n*10 + int(d-'0')
		}
		if n > budget.MaxMetaLen || len(s)-c-1 < n {
			return budget.Meta{}, false
		}
		f[i], s = s[c+1:c+1+n], s[c+1+n:]
	}
	if s != "" || f == [6]string{} { // all empty is encoded as ""
		return budget.Meta{}, false
	}
	return budget.Meta{KeyID: f[0], TeamID: f[1], OrgID: f[2], Surface: f[3], ModelGroupID: f[4], MCPServerID: f[5]}, true
}

// Release implements budget.Budget.
func (b *Budget) Release(ctx context.Context, id string) error {
	group, nonce, err := budget.ParseReservationID(id)
	if err != nil {
		return err
	}
	v, err := b.run(ctx, releaseScript, b.keys(group), nonce, b.retentionArg)
	if err != nil {
		return err
	}
	r := newReply(v, "release", 1)
	switch r.intIn(0, -2, 1) {
	case 1:
		return r.err
	case -1:
		return budget.ErrUnknownReservation
	case -2:
		return budget.ErrAlreadyCommitted
	}
	if r.err != nil {
		return r.err
	}
	return errReply("release")
}

// Usage implements budget.Budget.
func (b *Budget) Usage(ctx context.Context, group string, s budget.Scope) (budget.Usage, error) {
	if err := budget.ValidateID("group", group); err != nil {
		return budget.Usage{}, err
	}
	if err := s.Validate(); err != nil {
		return budget.Usage{}, err
	}
	u := budget.Usage{ID: s.ID, Limit: s.Limit}
	if _, end, ok := s.Period.Bounds(b.loc, time.Now()); ok {
		u.ResetAt = end
	}
	args := make([]any, 0, 12)
	args = append(args, int(s.Period.Kind()), s.Period.BucketMicros(), scopeField(s), b.retention.Microseconds())
	args = b.bounds(args)
	v, err := b.run(ctx, usageScript, b.keys(group), args...)
	if err != nil {
		return budget.Usage{}, err
	}
	r := newReply(v, "usage", 4)
	u.Spent = r.intIn(0, 0, 1<<53)
	u.Reserved = r.intIn(1, -1<<53, 1<<53)
	u.Overage = r.intIn(2, 0, 1<<53)
	known := r.intIn(3, 0, 1)
	if r.err != nil || len(r.v) != 4 {
		return budget.Usage{}, errReply("usage")
	}
	u.Remaining = max(0, u.Limit-u.Spent-u.Reserved)
	if known == 0 {
		return u, budget.ErrUnknownGroup
	}
	return u, nil
}
