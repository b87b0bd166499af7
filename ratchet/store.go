package ratchet

import (
	"context"
	"io/fs"
	"sync"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

var _ Sealer = (*identity.Keyring)(nil)

// ErrNotFound is returned by SessionStore.Load for an unknown session. It
// matches (errors.Is) every NOT_FOUND error; the errors the stores return
// also wrap fs.ErrNotExist.
var ErrNotFound = contracts.NewSentinel(contracts.CodeNotFound, "")

// ErrConflict is returned by SessionStore.Save when the stored version is
// not the one the caller loaded: another writer saved in between. Reload,
// and redo the work on the fresh state. It is a contracts.Sentinel (errors.As
// finds a *contracts.Error) with code STATE_INVALID_TRANSITION (HTTP 409), marked retryable.
var ErrConflict = contracts.NewSentinel(contracts.CodeStateInvalidTransition, "ratchet: session state was saved by another writer").WithRetryable(true)

// NotFound returns the error a SessionStore returns for an unknown id.
func NotFound(id string) error {
	return contracts.Wrap(contracts.CodeNotFound, "ratchet: no session state for "+quoteID(id), fs.ErrNotExist)
}

func quoteID(id string) string {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return `"` + id + `"`
}

// A SessionStore persists sealed session state (MarshalSealed output)
// under an id, with optimistic concurrency. Implementations must be safe
// for concurrent use, must store blobs durably before Save returns, and
// must never store a blob that is not conditional on the expected version.
type SessionStore interface {
	// Load returns the stored blob and its version (≥ 1), or an error
	// matching ErrNotFound.
	Load(ctx context.Context, id string) (sealed []byte, version uint64, err error)
	// Save stores sealed if the current version is expected (0: the id
	// must not exist yet) and returns the new version, expected+1.
	// Otherwise it stores nothing and returns ErrConflict.
	Save(ctx context.Context, id string, expected uint64, sealed []byte) (uint64, error)
	// Delete removes the id; deleting an unknown id is not an error.
	Delete(ctx context.Context, id string) error
}

// MemStore is an in-memory SessionStore, for tests and examples. It is safe
// for concurrent use.
type MemStore struct {
	mu   sync.Mutex // guards rows
	rows map[string]memRow
}

type memRow struct {
	version uint64
	blob    []byte
}

var _ SessionStore = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{rows: make(map[string]memRow)} }

// Load implements SessionStore.
func (m *MemStore) Load(ctx context.Context, id string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[id]
	if !ok {
		return nil, 0, NotFound(id)
	}
	return append([]byte(nil), r.blob...), r.version, nil
}

// Save implements SessionStore.
func (m *MemStore) Save(ctx context.Context, id string, expected uint64, sealed []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows[id].version != expected {
		return 0, ErrConflict
	}
	m.rows[id] = memRow{version: expected + 1, blob: append([]byte(nil), sealed...)}
	return expected + 1, nil
}

// Delete implements SessionStore.
func (m *MemStore) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, id)
	return nil
}

// LoadSession loads and opens the session stored under id. The id is bound
// into the seal's associated data, so a blob stored under another id does
// not open. It returns the version to pass to SaveSession.
func LoadSession(ctx context.Context, store SessionStore, sealer Sealer, id string, cfg Config) (*Session, uint64, error) {
	blob, v, err := store.Load(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	s, err := UnmarshalSealed(sealer, blob, []byte(id), cfg)
	if err != nil {
		return nil, 0, err
	}
	return s, v, nil
}

// SaveSession seals s and saves it under id, conditional on version
// (0 for a new id). It returns the new version, or ErrConflict.
func SaveSession(ctx context.Context, store SessionStore, sealer Sealer, id string, version uint64, s *Session) (uint64, error) {
	blob, err := s.MarshalSealed(sealer, []byte(id))
	if err != nil {
		return 0, err
	}
	return store.Save(ctx, id, version, blob)
}
