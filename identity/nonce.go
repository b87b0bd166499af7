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

// ErrNonceStoreFull is returned (wrapped) by MemoryNonceStore.Claim when
// the store holds its maximum number of unexpired keys. Its code is
// RATE_LIMITED and it is retryable: the request is denied, not accepted.
var ErrNonceStoreFull = &contracts.Error{Code: contracts.CodeRateLimited, Message: "identity: nonce store full", Retryable: true}

// A MemoryNonceStore is a NonceStore held in process memory, bounded to a
// fixed number of keys.
//
// When it is full it first forgets expired keys; if every key is still
// unexpired, Claim returns ErrNonceStoreFull rather than forgetting a live
// key, because forgetting one would allow that nonce to be replayed. It is
// safe for concurrent use. Its state does not survive a restart and is not
// shared between processes; a fleet of verifiers needs a shared store
// (such as one on Redis).
type MemoryNonceStore struct {
	max int
	now func() time.Time

	mu      sync.Mutex // guards expires and order
	expires map[string]time.Time
	order   expiryHeap
}

var _ NonceStore = (*MemoryNonceStore)(nil)

// NewMemoryNonceStore returns an empty store for at most max keys
// (DefaultMaxNonces if max <= 0).
func NewMemoryNonceStore(max int) *MemoryNonceStore {
	if max <= 0 {
		max = DefaultMaxNonces
	}
	return &MemoryNonceStore{max: max, now: time.Now, expires: make(map[string]time.Time)}
}

// Claim implements NonceStore. A non-positive ttl is an error with code
// TALOS_INVALID_INPUT; a cancelled ctx returns ctx's error wrapped with
// code INTERNAL.
func (s *MemoryNonceStore) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, contracts.Wrap(contracts.CodeInternal, "identity: nonce store: context done", err)
	}
	if ttl <= 0 {
		return false, contracts.Errorf(contracts.CodeInvalidInput, "identity: nonce ttl must be positive")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.expires[key]; ok {
		if now.Before(exp) {
			return false, nil
		}
		// Expired: it may be claimed again. The stale heap entry is
		// skipped when popped because its time no longer matches.
		delete(s.expires, key)
	}
	if len(s.expires) >= s.max {
		s.purgeLocked(now)
		if len(s.expires) >= s.max {
			return false, ErrNonceStoreFull
		}
	}
	exp := now.Add(ttl)
	s.expires[key] = exp
	heap.Push(&s.order, expiry{key: key, at: exp})
	s.compactLocked()
	return true, nil
}

// Len returns the number of keys held, including expired keys not yet
// purged.
func (s *MemoryNonceStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expires)
}

// purgeLocked forgets every key that has expired at now.
func (s *MemoryNonceStore) purgeLocked(now time.Time) {
	for len(s.order) > 0 && !now.Before(s.order[0].at) {
		e := heap.Pop(&s.order).(expiry)
		if at, ok := s.expires[e.key]; ok && at.Equal(e.at) {
			delete(s.expires, e.key)
		}
	}
}

// compactLocked rebuilds the heap when stale entries (of keys that expired
// and were claimed again) make it much larger than the map, so memory stays
// bounded by about twice max.
func (s *MemoryNonceStore) compactLocked() {
	if len(s.order) <= 2*s.max {
		return
	}
	s.order = s.order[:0]
	for k, at := range s.expires {
		s.order = append(s.order, expiry{key: k, at: at})
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
