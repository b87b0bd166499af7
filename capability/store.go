package capability

import (
	"context"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// HashKey is the revocation key of a token by its capability hash.
func HashKey(capabilityHash string) string { return "hash:" + capabilityHash }

// NonceKey is the revocation key of every token carrying nonce.
func NonceKey(nonce string) string { return "nonce:" + nonce }

// A RevocationStore records revoked tokens, by [HashKey] or [NonceKey].
// Revoking a link of a delegation chain revokes every chain that contains
// it, because a [Verifier] checks the keys of every link.
//
// Implementations must be safe for concurrent use. An error means the store
// could not answer; the Verifier then denies (STORE_UNAVAILABLE).
type RevocationStore interface {
	// Revoke records key as revoked until until (a zero until means
	// forever). Once the token's exp (plus skew) has passed the record may
	// be dropped: the token is dead anyway.
	Revoke(ctx context.Context, key string, until time.Time) error
	// AnyRevoked reports whether any of keys is revoked.
	AnyRevoked(ctx context.Context, keys []string) (bool, error)
}

// A RevocationWatcher is a RevocationStore that can tell a Verifier about
// revocations made by any process, so that the Verifier can serve cached
// decisions without asking the store each time.
//
// WatchRevocations arranges for evict(key) to be called for every key
// revoked after it returns, and evict("") whenever revocations may have
// been missed (for example after reconnecting): the Verifier then drops its
// whole cache. live reports whether cached chains may be served; while it
// reports false the Verifier consults AnyRevoked on every request. live is
// the store's staleness guarantee: it must report true only when every
// revocation completed longer ago than the store's documented bound has
// already been passed to evict (capability/redis proves this with
// heartbeats, bound Options.MaxStaleness). It is called on every request
// and must be cheap.
// stop ends the watch. evict must not block for long.
type RevocationWatcher interface {
	RevocationStore
	WatchRevocations(evict func(key string)) (live func() bool, stop func())
}

// ReplayStore is the nonce store of package identity: Claim is an atomic
// set-if-absent with a TTL; false means replay and an error means deny.
// [identity.NewMemNonceStore] is the in-memory implementation and
// capability/redis.ReplayStore the shared one.
type ReplayStore = identity.NonceStore

// A MemRevocationStore is a RevocationWatcher held in process memory. Its
// watchers are called synchronously inside Revoke, so a Verifier using it
// denies the revoked token as soon as Revoke returns. It is safe for
// concurrent use; its state is neither durable nor shared between
// processes (use capability/redis for that).
type MemRevocationStore struct {
	now func() time.Time

	mu      sync.Mutex // guards revoked, watch, next and writes
	revoked map[string]time.Time
	watch   map[int]func(string)
	next    int
	writes  int
}

// sweepLocked forgets expired revocations, so the store's size follows
// the number of live ones.
func (s *MemRevocationStore) sweepLocked() {
	now := s.now()
	for k, until := range s.revoked {
		if !until.IsZero() && now.After(until) {
			delete(s.revoked, k)
		}
	}
}

var _ RevocationWatcher = (*MemRevocationStore)(nil)

// NewMemRevocationStore returns an empty store using clock now (time.Now
// when nil) to drop expired records.
func NewMemRevocationStore(now func() time.Time) *MemRevocationStore {
	if now == nil {
		now = time.Now
	}
	return &MemRevocationStore{now: now, revoked: map[string]time.Time{}, watch: map[int]func(string){}}
}

// Revoke implements RevocationStore. An empty key is an error with code
// TALOS_INVALID_INPUT.
func (s *MemRevocationStore) Revoke(ctx context.Context, key string, until time.Time) error {
	if key == "" {
		return contracts.New(contracts.CodeInvalidInput, "capability: empty revocation key")
	}
	if err := ctx.Err(); err != nil {
		return contracts.Wrap(contracts.CodeInternal, "capability: revoke cancelled", err)
	}
	s.mu.Lock()
	if old, ok := s.revoked[key]; !ok || (!old.IsZero() && (until.IsZero() || until.After(old))) {
		s.revoked[key] = until
	}
	if s.writes++; s.writes%1024 == 0 {
		s.sweepLocked()
	}
	fns := make([]func(string), 0, len(s.watch))
	for _, fn := range s.watch {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(key)
	}
	return nil
}

// AnyRevoked implements RevocationStore.
func (s *MemRevocationStore) AnyRevoked(ctx context.Context, keys []string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, contracts.Wrap(contracts.CodeInternal, "capability: revocation check cancelled", err)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		until, ok := s.revoked[k]
		if !ok {
			continue
		}
		if !until.IsZero() && now.After(until) {
			delete(s.revoked, k)
			continue
		}
		return true, nil
	}
	return false, nil
}

// WatchRevocations implements RevocationWatcher; the feed is always live.
func (s *MemRevocationStore) WatchRevocations(evict func(string)) (live func() bool, stop func()) {
	s.mu.Lock()
	id := s.next
	s.next++
	s.watch[id] = evict
	s.mu.Unlock()
	return func() bool { return true }, func() {
		s.mu.Lock()
		delete(s.watch, id)
		s.mu.Unlock()
	}
}
