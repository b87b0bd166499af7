package capability

import (
	"context"
	"errors"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// An Authorizer decides whether a principal may perform an action on a
// tool now. The Decision always says allow or deny; the error is non-nil
// only for misuse or a back-end failure, and then the Decision denies.
type Authorizer interface {
	Authorize(ctx context.Context, req Request) (Decision, error)
}

// A Request is one authorization question.
type Request struct {
	// Capability is the presented token or chain, in any form ParseChain
	// accepts (normally base64url). It may be empty when SessionID names a
	// session bound by an earlier request.
	Capability string
	// SessionID, when set together with Capability, binds the verified
	// capability to (Principal, SessionID) after an allowed decision; when
	// set alone, it selects the capability that Principal bound before.
	// Sessions are forgotten when a revocation evicts their chain and, when
	// DefaultSessionCacheSize is reached, at random.
	SessionID string
	// Principal is the requester, as proven by the transport: the key of an
	// attested HTTP request or the signer of an MCP payload. It must equal
	// the subject of the chain's leaf (holder binding).
	Principal identity.DID
	// Tool and Action are what the principal wants to do.
	Tool, Action string
	// ArgsDigest is an optional digest of the call's arguments, copied into
	// the Decision for the audit log.
	ArgsDigest string
	// Nonce, when set, is claimed in Config.Replay under (principal, nonce)
	// after every other check passes: a second request with the same nonce
	// is denied with REPLAY.
	Nonce string
	// Scope is the RBAC scope of the request, used when Config.RBAC is set.
	Scope Scope
}

// Config configures a Verifier. Its zero value is not usable: TrustedIssuers
// and Revocations are required.
type Config struct {
	// TrustedIssuers are the root issuers whose tokens (and chains rooted in
	// them) are accepted. Required.
	TrustedIssuers []identity.DID
	// Revocations is consulted for every link's HashKey and NonceKey.
	// Required. A store that is a RevocationWatcher lets verified chains be
	// served from the cache; any other store is asked on every request.
	Revocations RevocationStore
	// Replay is the store for Request.Nonce. If nil, a request carrying a
	// nonce is a misuse error (and denied).
	Replay ReplayStore
	// ReplayTTL is how long a request nonce is remembered. Zero means
	// DefaultReplayTTL.
	ReplayTTL time.Duration
	// Audience names this verifier. If set, the chain's leaf must carry
	// metadata.aud equal to it. If empty, any token carrying an audience is
	// denied (it is addressed to some other service).
	Audience string
	// Registry, if set, classifies tool actions: unlisted actions are denied
	// (UNKNOWN_TOOL), and actions not classified read are denied under a
	// read-only token or by a read-only grant (SCOPE_MISMATCH). Setting a
	// Registry is the way to get "an unknown tool is denied"; without one,
	// any tool and action a token grants is allowed, and read-only tokens
	// and grants allow nothing, because nothing says which actions only
	// read. Recommended for every deployment.
	Registry *ToolRegistry
	// RBAC, if set, must also allow the principal the permission
	// "tool.action" in Request.Scope (RBAC_DENIED otherwise), checked with
	// RBAC.CheckTool: a read-only role allows only actions that the RBAC
	// engine's own RBACConfig.Registry classifies as read.
	RBAC *RBAC
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// Skew is the tolerated clock skew on nbf and exp. Zero means
	// DefaultSkew; a negative value means none.
	Skew time.Duration
	// MaxChainDepth limits chains. Zero means DefaultMaxChainDepth; it
	// cannot exceed MaxChainDepth.
	MaxChainDepth int
	// CacheSize bounds the verified-chain cache. Zero means
	// DefaultCacheSize.
	CacheSize int
}

// numShards spreads the cache so that copy-on-write inserts copy small
// maps.
const numShards = 64

// A Verifier is the package's Authorizer. It verifies presented chains,
// keeps the verified ones in a bounded cache keyed by a hash of the
// presented bytes (the full bytes are compared on a hit), and answers
// later requests for them without signature checks or allocations.
// Entries die with the chain's earliest exp, and revocations evict them at
// once (see RevocationWatcher). A Verifier is safe for concurrent use;
// call Close to stop watching the revocation store.
type Verifier struct {
	cfg       Config
	trusted   map[identity.DID]struct{}
	skew      int64
	maxDepth  int
	replayTTL time.Duration
	perShard  int
	seed      maphash.Seed
	feedLive  func() bool
	stop      func()
	closed    atomic.Bool

	gen    atomic.Uint64 // incremented by every eviction
	shards [numShards]shard

	sessMu   sync.Mutex // guards sessions
	sessions map[sessionKey]*entry
}

// sessionKey scopes session ids to their principal, so one principal
// cannot displace another's session.
type sessionKey struct {
	principal identity.DID
	id        string
}

// A shard is read without locks: m points to an immutable map that
// writers replace (copy-on-write) while holding mu.
type shard struct {
	mu sync.Mutex // serializes writers of m
	m  atomic.Pointer[map[uint64]*entry]
}

// update replaces the shard's map with a modified copy; fn runs under mu
// and returns false to keep the old map.
func (s *shard) update(fn func(m map[uint64]*entry) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := maps.Clone(*s.m.Load())
	if m == nil {
		m = make(map[uint64]*entry)
	}
	if fn(m) {
		s.m.Store(&m)
	}
}

// entry is a verified chain, compiled for lookup.
type entry struct {
	raw        string // the presented bytes
	leafHash   string
	issuer     identity.DID
	subject    identity.DID
	subjectStr string
	depth      int
	notBefore  int64 // latest nbf − skew of any link
	notAfter   int64 // earliest exp + skew of any link
	readOnly   bool
	grants     []Grant
	byTool     map[string][]int // for larger scopes; nil when small
	revKeys    []string
	dead       atomic.Bool
}

var _ Authorizer = (*Verifier)(nil)

// NewVerifier returns a Verifier for cfg. Missing required fields are an
// error with code TALOS_INVALID_INPUT.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.TrustedIssuers) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: Config.TrustedIssuers is required")
	}
	if cfg.Revocations == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: Config.Revocations is required")
	}
	if cfg.MaxChainDepth < 0 || cfg.MaxChainDepth > MaxChainDepth || cfg.CacheSize < 0 || cfg.ReplayTTL < 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: Config limits out of range")
	}
	v := &Verifier{cfg: cfg, trusted: make(map[identity.DID]struct{}), seed: maphash.MakeSeed(), sessions: make(map[sessionKey]*entry)}
	for _, d := range cfg.TrustedIssuers {
		if d.IsZero() {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: zero DID in Config.TrustedIssuers")
		}
		v.trusted[d] = struct{}{}
	}
	if v.cfg.Now == nil {
		v.cfg.Now = time.Now
	}
	switch {
	case cfg.Skew == 0:
		v.skew = int64(DefaultSkew / time.Second)
	case cfg.Skew > 0:
		v.skew = int64(cfg.Skew / time.Second)
	}
	v.maxDepth = cmpOr(cfg.MaxChainDepth, DefaultMaxChainDepth)
	v.replayTTL = cmpOr(cfg.ReplayTTL, DefaultReplayTTL)
	v.perShard = max(1, cmpOr(cfg.CacheSize, DefaultCacheSize)/numShards)
	for i := range v.shards {
		m := make(map[uint64]*entry)
		v.shards[i].m.Store(&m)
	}
	if w, ok := cfg.Revocations.(RevocationWatcher); ok {
		v.feedLive, v.stop = w.WatchRevocations(v.evict)
	} else {
		v.feedLive, v.stop = func() bool { return false }, func() {}
	}
	return v, nil
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a == zero {
		return b
	}
	return a
}

// Close stops watching the revocation store. The Verifier keeps working,
// asking the store on every request.
func (v *Verifier) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	v.stop()
	v.evict("")
	return nil
}

// live reports whether cached chains may be served without asking the
// revocation store.
func (v *Verifier) live() bool { return !v.closed.Load() && v.feedLive() }

// Revoke revokes tok (and so every chain containing it) by its capability
// hash until its expiry plus skew plus RevocationRetention (a margin for
// clocks that disagree with the store's), and evicts it from this
// Verifier's cache at once. Other Verifiers learn of it through their
// store. The store drops the record by its own clock: give an in-memory
// store the same clock as the Verifier.
func (v *Verifier) Revoke(ctx context.Context, tok *Token) error {
	key := HashKey(tok.hashHex)
	until := time.Unix(tok.exp+v.skew, 0).Add(RevocationRetention)
	if err := v.cfg.Revocations.Revoke(ctx, key, until); err != nil {
		return err
	}
	v.evict(key)
	return nil
}

// RevocationFeedLive reports whether the revocation store's watch feed is
// connected, so that cached chains are served without asking the store.
// It is false for stores that are not RevocationWatchers and after Close.
func (v *Verifier) RevocationFeedLive() bool { return v.live() }

// evict drops cached chains holding key, or all of them for "".
func (v *Verifier) evict(key string) {
	v.gen.Add(1)
	match := func(e *entry) bool { return key == "" || slices.Contains(e.revKeys, key) }
	for i := range v.shards {
		v.shards[i].update(func(m map[uint64]*entry) bool {
			changed := false
			for h, e := range m {
				if match(e) {
					e.dead.Store(true)
					delete(m, h)
					changed = true
				}
			}
			return changed
		})
	}
	v.sessMu.Lock()
	for id, e := range v.sessions {
		if match(e) {
			e.dead.Store(true)
			delete(v.sessions, id)
		}
	}
	v.sessMu.Unlock()
}

func (v *Verifier) lookup(raw string) (*entry, uint64) {
	h := maphash.String(v.seed, raw)
	e := (*v.shards[h%numShards].m.Load())[h]
	if e != nil && e.raw == raw && !e.dead.Load() {
		return e, h
	}
	return nil, h
}

// Authorize implements Authorizer. Denials are Decisions with a nil error;
// the error is set only when a store failed (Reason STORE_UNAVAILABLE) or
// the request misuses the Verifier (a Nonce without Config.Replay).
func (v *Verifier) Authorize(ctx context.Context, req Request) (Decision, error) {
	d := Decision{Reason: ReasonNoCapability, Principal: req.Principal, Tool: req.Tool, Action: req.Action, ArgsDigest: req.ArgsDigest}
	now := v.cfg.Now().Unix()
	var e *entry
	fresh := false
	switch {
	case req.Capability != "":
		var h uint64
		e, h = v.lookup(req.Capability)
		if e == nil {
			fresh = true
			var err error
			e, err = v.verify(ctx, req.Capability, h, now, &d)
			if e == nil {
				return d, err
			}
		}
	case req.SessionID != "":
		v.sessMu.Lock()
		e = v.sessions[sessionKey{req.Principal, req.SessionID}]
		v.sessMu.Unlock()
		if e == nil {
			return d, nil
		}
	default:
		return d, nil
	}
	err := v.decide(ctx, e, req, now, fresh, &d)
	if d.Allowed && req.SessionID != "" && req.Capability != "" {
		v.bindSession(sessionKey{req.Principal, req.SessionID}, e)
	}
	return d, err
}

func (v *Verifier) bindSession(id sessionKey, e *entry) {
	v.sessMu.Lock()
	defer v.sessMu.Unlock()
	if v.sessions[id] == e {
		return
	}
	if len(v.sessions) >= DefaultSessionCacheSize {
		for k := range v.sessions {
			delete(v.sessions, k)
			break
		}
	}
	v.sessions[id] = e
}

func deny(d *Decision, r ReasonCode) {
	d.Allowed = false
	d.Reason = r
}

// decide applies the per-request checks to a verified chain. It does not
// allocate unless a nonce, RBAC or an unwatched revocation store is used.
// fresh is true when e was verified (and checked for revocation) by this
// very request.
func (v *Verifier) decide(ctx context.Context, e *entry, req Request, now int64, fresh bool, d *Decision) error {
	d.CapabilityHash, d.Issuer, d.ChainDepth = e.leafHash, e.issuer, e.depth
	if now < e.notBefore {
		deny(d, ReasonNotYetValid)
		return nil
	}
	if now > e.notAfter {
		deny(d, ReasonExpired)
		v.evictEntry(e)
		return nil
	}
	if req.Principal.IsZero() || req.Principal != e.subject {
		deny(d, ReasonHolderMismatch)
		return nil
	}
	if !fresh && (e.dead.Load() || !v.live()) {
		revoked, err := v.cfg.Revocations.AnyRevoked(ctx, e.revKeys)
		if err != nil {
			deny(d, ReasonStoreUnavailable)
			return contracts.Wrap(contracts.CodeInternal, "capability: revocation store failed", errors.Join(ErrStore, err))
		}
		if revoked {
			deny(d, ReasonRevoked)
			return nil
		}
	}
	// isRead: the registry classifies the action as read. Without a
	// registry nothing is known to only read, so read-only tokens and
	// grants allow nothing.
	isRead := false
	if v.cfg.Registry != nil {
		te, ok := v.cfg.Registry.Lookup(req.Tool, req.Action)
		if !ok {
			deny(d, ReasonUnknownTool)
			return nil
		}
		isRead = te.Class == ClassRead
	}
	if e.readOnly && !isRead {
		deny(d, ReasonScopeMismatch)
		return nil
	}
	gi := e.match(req.Tool, req.Action, isRead)
	if gi < 0 {
		deny(d, ReasonScopeMismatch)
		return nil
	}
	d.Grant = e.grants[gi]
	if v.cfg.RBAC != nil {
		if ok, _ := v.cfg.RBAC.CheckTool(e.subjectStr, req.Tool, req.Action, req.Scope); !ok {
			deny(d, ReasonRBACDenied)
			return nil
		}
	}
	if req.Nonce != "" {
		if v.cfg.Replay == nil {
			deny(d, ReasonReplay)
			return contracts.New(contracts.CodeInvalidInput, "capability: Request.Nonce set but Config.Replay is nil")
		}
		first, err := identity.ClaimNonce(ctx, v.cfg.Replay, e.subjectStr, "capability:"+e.subjectStr+"\x00"+req.Nonce, v.replayTTL)
		if err != nil {
			deny(d, ReasonStoreUnavailable)
			if errors.Is(err, identity.ErrNonceRateLimited) {
				// Only this principal is over its nonce quota.
				return contracts.Wrap(contracts.CodeRateLimited, "capability: nonce quota of this principal exhausted", err).WithRetryable(true)
			}
			return contracts.Wrap(contracts.CodeInternal, "capability: replay store failed", errors.Join(ErrStore, err))
		}
		if !first {
			deny(d, ReasonReplay)
			return nil
		}
	}
	d.Allowed, d.Reason = true, ReasonAllowed
	return nil
}

// match returns the index of the first grant allowing action on tool, or
// -1. A read-only grant counts only when isRead.
func (e *entry) match(tool, action string, isRead bool) int {
	if e.byTool == nil {
		for i := range e.grants {
			if e.grants[i].Allows(tool, action) && (isRead || !e.grants[i].ReadOnly) {
				return i
			}
		}
		return -1
	}
	for _, i := range e.byTool[tool] {
		if slices.Contains(e.grants[i].Actions, action) && (isRead || !e.grants[i].ReadOnly) {
			return i
		}
	}
	return -1
}

func (v *Verifier) evictEntry(e *entry) {
	h := maphash.String(v.seed, e.raw)
	v.shards[h%numShards].update(func(m map[uint64]*entry) bool {
		if m[h] != e {
			return false
		}
		delete(m, h)
		return true
	})
}

func (v *Verifier) trustedIssuer(d identity.DID) bool {
	_, ok := v.trusted[d]
	return ok
}

// verify is the cold path: parse, verify the chain, check the audience and
// revocation, and cache the result. It returns nil and fills d on denial.
func (v *Verifier) verify(ctx context.Context, raw string, h uint64, now int64, d *Decision) (*entry, error) {
	c, err := ParseChain(raw)
	if err != nil {
		deny(d, ReasonNoCapability)
		return nil, nil
	}
	leaf := c.Leaf()
	d.CapabilityHash, d.Issuer, d.ChainDepth = leaf.hashHex, c[0].issuer, len(c)
	if err := verifyChain(c, v.trustedIssuer, now, v.skew, v.maxDepth); err != nil {
		var ce *ChainError
		errors.As(err, &ce)
		deny(d, ce.Reason)
		return nil, nil
	}
	if leaf.aud != v.cfg.Audience {
		deny(d, ReasonAudienceMismatch)
		return nil, nil
	}
	e := &entry{
		raw: raw, leafHash: leaf.hashHex, issuer: c[0].issuer, subject: leaf.subject,
		subjectStr: leaf.subjectStr, depth: len(c), readOnly: leaf.readOnly, grants: leaf.grants,
		notBefore: -1 << 62, notAfter: 1 << 62,
	}
	for _, t := range c {
		e.revKeys = append(e.revKeys, HashKey(t.hashHex), NonceKey(t.nonce))
		if t.hasNbf {
			e.notBefore = max(e.notBefore, t.nbf-v.skew)
		}
		e.notAfter = min(e.notAfter, t.exp+v.skew)
	}
	if len(e.grants) > 8 {
		e.byTool = make(map[string][]int)
		for i, g := range e.grants {
			e.byTool[g.Tool] = append(e.byTool[g.Tool], i)
		}
	}
	g0 := v.gen.Load()
	revoked, err := v.cfg.Revocations.AnyRevoked(ctx, e.revKeys)
	if err != nil {
		deny(d, ReasonStoreUnavailable)
		return nil, contracts.Wrap(contracts.CodeInternal, "capability: revocation store failed", errors.Join(ErrStore, err))
	}
	if revoked {
		deny(d, ReasonRevoked)
		return nil, nil
	}
	// Without a live revocation feed the entry is still cached: decide then
	// asks the store on every request, so only signature work is saved.
	v.shards[h%numShards].update(func(m map[uint64]*entry) bool {
		if v.gen.Load() != g0 {
			// An eviction (maybe of this very chain) arrived after the
			// revocation check: do not cache, and mark the entry dead so
			// that a session bound to it by this request re-checks the
			// store on every use instead of outliving the revocation.
			e.dead.Store(true)
			return false
		}
		if len(m) >= v.perShard {
			for k := range m {
				delete(m, k)
				break
			}
		}
		m[h] = e
		return true
	})
	return e, nil
}
