package identity

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// A NonceStore remembers single-use keys (for example an attestation's
// key id and nonce) for a while.
//
// Claim records key for ttl if it is absent and reports first = true; if
// key is present and unexpired it reports first = false (a replay). Claim
// must be atomic: of any number of concurrent Claims of one key, at most one
// reports true. An error means the store could not answer, and callers must
// treat it as a denial, never as "first". Implementations must be safe for
// concurrent use.
type NonceStore interface {
	Claim(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// A PrincipalNonceStore is a NonceStore that can account a claim to the
// principal making it, so that one principal cannot use up the store for
// everyone. ClaimFor is Claim with the principal (for example the DID of
// the key that signed the request); an error wrapping ErrNonceRateLimited
// denies only that principal. [MemNonceStore] implements it.
type PrincipalNonceStore interface {
	NonceStore
	ClaimFor(ctx context.Context, principal, key string, ttl time.Duration) (first bool, err error)
}

// ClaimNonce claims key for principal in s: through ClaimFor when s is a
// PrincipalNonceStore, through Claim otherwise (a shared store such as
// Redis, which has no per-principal quota of its own).
func ClaimNonce(ctx context.Context, s NonceStore, principal, key string, ttl time.Duration) (bool, error) {
	if ps, ok := s.(PrincipalNonceStore); ok {
		return ps.ClaimFor(ctx, principal, key, ttl)
	}
	return s.Claim(ctx, key, ttl)
}

// ErrNonceStoreFull is returned (wrapped) by MemNonceStore.Claim when
// the store holds its maximum number of unexpired keys. Its code is
// RATE_LIMITED and it is retryable: the request is denied, not accepted.
var ErrNonceStoreFull = contracts.NewSentinel(contracts.CodeRateLimited, "identity: nonce store full").WithRetryable(true)

// ErrNonceRateLimited is returned by MemNonceStore.ClaimFor when the
// principal claims faster than its rate or holds its maximum number of
// unexpired keys. Its code is RATE_LIMITED and it is retryable. Only that
// principal is denied.
var ErrNonceRateLimited = contracts.NewSentinel(contracts.CodeRateLimited, "identity: nonce quota of this principal exhausted").WithRetryable(true)

// MemNonceStoreConfig configures a MemNonceStore. The zero value
// gives the defaults.
type MemNonceStoreConfig struct {
	// Max bounds the keys held. Zero means DefaultMaxNonces.
	Max int
	// MaxPerPrincipal bounds the unexpired keys one principal holds
	// (ClaimFor). Zero means max(Max/16, min(Max, 1024)): at least 16
	// principals are then needed to fill a store of 16,384 keys or more.
	MaxPerPrincipal int
	// Rate is how many claims per second one principal may make, with
	// bursts of Burst. Zero means DefaultNonceRate and DefaultNonceBurst.
	Rate  float64
	Burst int
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// A MemNonceStore is a NonceStore held in process memory, bounded to a
// fixed number of keys.
//
// Claims made with ClaimFor are accounted to their principal, which is
// rate-limited (a token bucket) and may hold at most MaxPerPrincipal
// unexpired keys; a principal over either limit gets ErrNonceRateLimited,
// and nobody else notices. A replay (a key still held) is answered before
// either limit is charged, so replaying someone's requests does not use up
// their quota. Expired keys are forgotten in expiry order, whenever room is
// needed. If every key is still unexpired when the store is full, Claim
// returns ErrNonceStoreFull rather than forgetting a live key, because
// forgetting one would allow that nonce to be replayed. Claim (without a
// principal) is limited only by Max. It is safe for concurrent use. Its
// state does not survive a restart and is not shared between processes; a
// fleet of verifiers needs a shared store (such as one on Redis).
type MemNonceStore struct {
	max, perPrincipal int
	rate, burst       float64
	now               func() time.Time

	mu      sync.Mutex // guards expires, order and owners
	expires map[string]nonceEntry
	order   expiryHeap
	owners  map[string]*nonceOwner
}

type nonceEntry struct {
	at    time.Time
	owner *nonceOwner // nil for Claim
}

// nonceOwner is one principal's account: its live keys and token bucket.
type nonceOwner struct {
	name   string
	count  int
	tokens float64
	last   time.Time
}

var _ PrincipalNonceStore = (*MemNonceStore)(nil)

// NewMemNonceStore returns an empty store for at most max keys
// (DefaultMaxNonces if max <= 0), with the default per-principal limits of
// MemNonceStoreConfig.
func NewMemNonceStore(max int) *MemNonceStore {
	if max < 0 {
		max = 0
	}
	s, _ := NewMemNonceStoreConfig(MemNonceStoreConfig{Max: max})
	return s
}

// NewMemoryNonceStore is the former name of NewMemNonceStore.
//
// Deprecated: use NewMemNonceStore (in-memory back-ends are named Mem<Thing>).
func NewMemoryNonceStore(max int) *MemNonceStore { return NewMemNonceStore(max) }

// NewMemNonceStoreConfig returns an empty store configured by cfg.
// Negative limits, or a MaxPerPrincipal above Max, are an error with code
// TALOS_INVALID_INPUT.
func NewMemNonceStoreConfig(cfg MemNonceStoreConfig) (*MemNonceStore, error) {
	if cfg.Max < 0 || cfg.MaxPerPrincipal < 0 || cfg.Rate < 0 || cfg.Burst < 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: negative nonce store limit")
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMaxNonces
	}
	if cfg.MaxPerPrincipal == 0 {
		cfg.MaxPerPrincipal = max(cfg.Max/16, min(cfg.Max, 1024))
	}
	if cfg.MaxPerPrincipal > cfg.Max {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: MaxPerPrincipal exceeds Max")
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultNonceRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultNonceBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemNonceStore{
		max: cfg.Max, perPrincipal: cfg.MaxPerPrincipal, rate: cfg.Rate, burst: float64(cfg.Burst), now: cfg.Now,
		expires: make(map[string]nonceEntry), owners: make(map[string]*nonceOwner),
	}, nil
}

// Claim implements NonceStore. A non-positive ttl is an error with code
// TALOS_INVALID_INPUT; a cancelled ctx returns ctx's error wrapped with
// code INTERNAL.
func (s *MemNonceStore) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.claim(ctx, "", false, key, ttl)
}

// ClaimFor implements PrincipalNonceStore: Claim, accounted to principal.
// Errors are Claim's, plus ErrNonceRateLimited when principal is over its
// rate or holds MaxPerPrincipal unexpired keys.
func (s *MemNonceStore) ClaimFor(ctx context.Context, principal, key string, ttl time.Duration) (bool, error) {
	return s.claim(ctx, principal, true, key, ttl)
}

func (s *MemNonceStore) claim(ctx context.Context, principal string, scoped bool, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, contracts.Wrap(contracts.CodeInternal, "identity: nonce store: context done", err)
	}
	if ttl <= 0 {
		return false, contracts.New(contracts.CodeInvalidInput, "identity: nonce ttl must be positive")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.expires[key]; ok {
		if now.Before(e.at) {
			return false, nil // a replay: charged to nobody
		}
		// Expired: it may be claimed again. The stale heap entry is
		// skipped when popped because its time no longer matches.
		s.forgetLocked(key, e)
	}
	var o *nonceOwner
	if scoped {
		o = s.owners[principal]
		if o == nil {
			o = &nonceOwner{name: principal, tokens: s.burst, last: now}
		} else if d := now.Sub(o.last); d > 0 {
			o.tokens = min(s.burst, o.tokens+d.Seconds()*s.rate)
			o.last = now
		}
	}
	if len(s.expires) >= s.max || (o != nil && o.count >= s.perPrincipal) {
		s.purgeLocked(now) // forget expired keys, oldest first
		if len(s.expires) >= s.max {
			return false, ErrNonceStoreFull
		}
	}
	if o != nil && (o.tokens < 1 || o.count >= s.perPrincipal) {
		return false, ErrNonceRateLimited
	}
	exp := now.Add(ttl)
	if o != nil {
		o.tokens--
		if o.count++; o.count == 1 {
			s.owners[principal] = o
		}
	}
	s.expires[key] = nonceEntry{at: exp, owner: o}
	heap.Push(&s.order, expiry{key: key, at: exp})
	s.compactLocked()
	return true, nil
}

// forgetLocked drops key (held as e) and its owner's account of it. An
// owner without keys is dropped too: with no claim in the last TTL its
// bucket has (nearly always) refilled.
func (s *MemNonceStore) forgetLocked(key string, e nonceEntry) {
	delete(s.expires, key)
	if o := e.owner; o != nil {
		if o.count--; o.count == 0 {
			delete(s.owners, o.name)
		}
	}
}

// Len returns the number of keys held, including expired keys not yet
// purged.
func (s *MemNonceStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expires)
}

// purgeLocked forgets every key that has expired at now.
func (s *MemNonceStore) purgeLocked(now time.Time) {
	for len(s.order) > 0 && !now.Before(s.order[0].at) {
		x := heap.Pop(&s.order).(expiry)
		if e, ok := s.expires[x.key]; ok && e.at.Equal(x.at) {
			s.forgetLocked(x.key, e)
		}
	}
}

// compactLocked rebuilds the heap when stale entries (of keys that expired
// and were claimed again) make it much larger than the map, so memory stays
// bounded by about twice max.
func (s *MemNonceStore) compactLocked() {
	if len(s.order) <= 2*s.max {
		return
	}
	s.order = s.order[:0]
	for k, e := range s.expires {
		s.order = append(s.order, expiry{key: k, at: e.at})
	}
	heap.Init(&s.order)
}

type expiry struct {
	key string
	at  time.Time
}

// expiryHeap is a min-heap of expiry times.
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
