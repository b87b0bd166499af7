package audit

import (
	"context"
	"sync"

	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors of stores. Each matches (errors.Is) every error of its code.
var (
	// ErrNotFound: the requested entry, hash or checkpoint does not exist
	// (yet). Code NOT_FOUND.
	ErrNotFound = contracts.NewSentinel(contracts.CodeNotFound, "")
	// ErrStore: the back-end failed; the operation did not happen or its
	// outcome is unknown. Code INTERNAL. Callers deny by default.
	ErrStore = contracts.NewSentinel(contracts.CodeInternal, "")
)

// storeError wraps a back-end failure.
func storeError(msg string, cause error) error {
	return contracts.Wrap(contracts.CodeInternal, "audit: store: "+msg, cause)
}

// StoreError wraps a back-end failure for Store implementations: code
// INTERNAL, matched by [ErrStore].
func StoreError(msg string, cause error) error { return storeError(msg, cause) }

// NotFound returns a NOT_FOUND error for Store implementations.
func NotFound(msg string) error {
	return contracts.New(contracts.CodeNotFound, "audit: "+msg)
}

// A BuildFunc computes the tlog stored hashes of entries appended after
// oldSize, reading older stored hashes through r. It is pure: calling it
// twice with the same input gives the same output.
type BuildFunc func(oldSize uint64, r tlog.HashReader) (hashes []Hash, err error)

// A Store persists a Merkle log: its entries, the tlog stored hashes
// (storage indexes of golang.org/x/mod/sumdb/tlog) and the latest signed
// checkpoint. Implementations must be safe for concurrent use, by several
// processes when the back-end is shared.
//
// Not found is [ErrNotFound]; back-end failure is [ErrStore].
type Store interface {
	// Append appends entries at the end of the log, atomically with respect
	// to every other appender: it reads the current size n, calls build(n,
	// r) where r reads stored hashes of the first n entries, and stores the
	// entries at [n, n+len(entries)) with the returned hashes, which must
	// be exactly tlog.StoredHashCount(n+len)−tlog.StoredHashCount(n). It
	// returns n only once the entries are durable. On error nothing is
	// appended.
	Append(ctx context.Context, entries [][]byte, build BuildFunc) (first uint64, err error)
	// Size returns the number of durable entries.
	Size(ctx context.Context) (uint64, error)
	// ReadHashes returns the stored hashes at the storage indexes, which
	// must belong to durable entries, else ErrNotFound.
	ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error)
	// ReadEntries returns the entries [start, end), else ErrNotFound.
	ReadEntries(ctx context.Context, start, end uint64) ([][]byte, error)
	// Checkpoint returns the latest signed checkpoint note, or ErrNotFound.
	Checkpoint(ctx context.Context) ([]byte, error)
	// PutCheckpoint records a signed checkpoint note of the given size if
	// it is larger than the stored one; otherwise it does nothing.
	PutCheckpoint(ctx context.Context, size uint64, note []byte) error
}

// hashReader adapts a Store to tlog.HashReader for one context.
type hashReader struct {
	ctx context.Context
	s   Store
}

func (r hashReader) ReadHashes(indexes []int64) ([]Hash, error) {
	hs, err := r.s.ReadHashes(r.ctx, indexes)
	if err == nil && len(hs) != len(indexes) {
		err = storeError("store returned the wrong number of hashes", nil)
	}
	return hs, err
}

// MemStore is the in-memory Store: the reference semantics for the
// conformance suite, and the store of tests and examples. It is safe for
// concurrent use. Its contents are lost with the process.
type MemStore struct {
	mu         sync.RWMutex // guards everything below
	entries    [][][]byte   // chunks of memChunk
	nentry     uint64
	hashes     [][]Hash // chunks of memChunk
	nhash      int64
	checkpoint []byte
	cpSize     uint64
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return new(MemStore) }

// Append implements Store.
func (m *MemStore) Append(ctx context.Context, entries [][]byte, build BuildFunc) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nentry
	hs, err := build(n, tlog.HashReaderFunc(m.readHashesLocked))
	if err != nil {
		return 0, err
	}
	want := tlog.StoredHashCount(int64(n)+int64(len(entries))) - tlog.StoredHashCount(int64(n))
	if int64(len(hs)) != want {
		return 0, storeError("build returned the wrong number of hashes", nil)
	}
	for _, e := range entries {
		if m.nentry%memChunk == 0 {
			m.entries = append(m.entries, make([][]byte, 0, memChunk))
		}
		c := &m.entries[m.nentry/memChunk]
		*c = append(*c, append([]byte(nil), e...))
		m.nentry++
	}
	for _, h := range hs {
		if m.nhash%memChunk == 0 {
			m.hashes = append(m.hashes, make([]Hash, memChunk))
		}
		m.hashes[m.nhash/memChunk][m.nhash%memChunk] = h
		m.nhash++
	}
	return n, nil
}

// memChunk is the number of hashes or entries per MemStore chunk: chunks
// keep appends from copying the whole array as it grows.
const memChunk = 1 << 14

func (m *MemStore) readHashesLocked(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= m.nhash {
			return nil, NotFound("hash index beyond the log")
		}
		out[i] = m.hashes[x/memChunk][x%memChunk]
	}
	return out, nil
}

// Size implements Store.
func (m *MemStore) Size(ctx context.Context) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.nentry, nil
}

// ReadHashes implements Store.
func (m *MemStore) ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.readHashesLocked(indexes)
}

// ReadEntries implements Store.
func (m *MemStore) ReadEntries(ctx context.Context, start, end uint64) ([][]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if start > end || end > m.nentry {
		return nil, NotFound("entries beyond the log")
	}
	out := make([][]byte, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, append([]byte(nil), m.entries[i/memChunk][i%memChunk]...))
	}
	return out, nil
}

// Checkpoint implements Store.
func (m *MemStore) Checkpoint(ctx context.Context) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.checkpoint == nil {
		return nil, NotFound("no checkpoint")
	}
	return append([]byte(nil), m.checkpoint...), nil
}

// PutCheckpoint implements Store.
func (m *MemStore) PutCheckpoint(ctx context.Context, size uint64, note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checkpoint != nil && size <= m.cpSize {
		return nil
	}
	m.checkpoint, m.cpSize = append([]byte(nil), note...), size
	return nil
}

// BuildHashes is the BuildFunc of the log: it computes the stored hashes of
// entries appended after oldSize and the new root, reading the old tree's
// frontier through r in one call. Stores use it in tests; the Log passes it.
func BuildHashes(entries [][]byte) BuildFunc {
	return func(oldSize uint64, r tlog.HashReader) ([]Hash, error) {
		leaves := make([]Hash, len(entries))
		for i, e := range entries {
			leaves[i] = tlog.RecordHash(e)
		}
		return buildFromLeaves(oldSize, leaves, r)
	}
}

// buildFromLeaves computes the stored hashes of leaves appended after
// oldSize. Appending is a binary counter over the complete subtrees of the
// tree: leaf i merges with one subtree per trailing one bit of i. It reads,
// in one call, only the old subtrees the batch merges with (the lowest ones
// of the old tree's frontier), then works on a stack of subtree roots.
// The result is exactly what tlog.StoredHashes gives leaf by leaf.
func buildFromLeaves(oldSize uint64, leaves []Hash, r tlog.HashReader) ([]Hash, error) {
	n, m := oldSize, uint64(len(leaves))
	if n >= 1<<62 || m >= 1<<62 {
		return nil, storeError("tree too large", nil)
	}
	// The old subtree at level l (bit l of n set) is merged iff the batch
	// reaches the next multiple of 2^(l+1); that threshold grows with l,
	// so the merged subtrees are the lowest ones of the frontier.
	// The index list goes to a HashReader (an interface), so it is heap
	// allocated: count first, allocate it exactly, and only if needed.
	merged := func(level int) bool {
		span := uint64(1) << (level + 1)
		return n%span+m >= span
	}
	k := 0
	for level := 0; n>>level != 0; level++ {
		if n>>level&1 == 1 {
			if !merged(level) {
				break
			}
			k++
		}
	}
	var need []int64
	if k > 0 {
		need = make([]int64, 0, k)
		for level := 0; len(need) < k; level++ {
			if n>>level&1 == 1 {
				need = append(need, tlog.StoredHashIndex(level, int64(n>>level)-1))
			}
		}
	}
	var stackBuf [64]Hash
	stack := stackBuf[:0]
	if len(need) > 0 {
		old, err := r.ReadHashes(need)
		if err != nil {
			return nil, err
		}
		if len(old) != len(need) {
			return nil, storeError("store returned the wrong number of hashes", nil)
		}
		// need is lowest level first; the stack's top is the lowest.
		for i := len(old) - 1; i >= 0; i-- {
			stack = append(stack, old[i])
		}
	}
	want := tlog.StoredHashCount(int64(n+m)) - tlog.StoredHashCount(int64(n))
	out := make([]Hash, 0, want)
	for j, h := range leaves {
		out = append(out, h)
		for x := n + uint64(j); x&1 == 1; x >>= 1 {
			if len(stack) == 0 {
				return nil, storeError("hash bookkeeping is off", nil)
			}
			h = tlog.NodeHash(stack[len(stack)-1], h)
			stack = stack[:len(stack)-1]
			out = append(out, h)
		}
		stack = append(stack, h)
	}
	return out, nil
}
