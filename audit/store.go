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
	ErrNotFound = &contracts.Error{Code: contracts.CodeNotFound}
	// ErrStore: the back-end failed; the operation did not happen or its
	// outcome is unknown. Code INTERNAL. Callers deny by default.
	ErrStore = &contracts.Error{Code: contracts.CodeInternal}
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
	return contracts.Errorf(contracts.CodeNotFound, "audit: "+msg)
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
	entries    [][]byte
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
	n := uint64(len(m.entries))
	hs, err := build(n, tlog.HashReaderFunc(m.readHashesLocked))
	if err != nil {
		return 0, err
	}
	want := tlog.StoredHashCount(int64(n)+int64(len(entries))) - tlog.StoredHashCount(int64(n))
	if int64(len(hs)) != want {
		return 0, storeError("build returned the wrong number of hashes", nil)
	}
	for _, e := range entries {
		m.entries = append(m.entries, append([]byte(nil), e...))
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

// memChunk is the number of hashes per MemStore chunk: chunks keep appends
// from copying the whole hash array as it grows.
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
	return uint64(len(m.entries)), nil
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
	if start > end || end > uint64(len(m.entries)) {
		return nil, NotFound("entries beyond the log")
	}
	out := make([][]byte, 0, end-start)
	for _, e := range m.entries[start:end] {
		out = append(out, append([]byte(nil), e...))
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

// batchReader serves stored hashes of a batch being built: the new ones from
// pending, the old frontier from a prefetched list, the rest from the store.
type batchReader struct {
	base     int64 // storage index of the first pending hash
	pending  []Hash
	frontier []int64
	fhashes  []Hash
	store    tlog.HashReader
}

func (b *batchReader) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		if x >= b.base {
			if x-b.base >= int64(len(b.pending)) {
				return nil, storeError("hash read beyond the batch", nil)
			}
			out[i] = b.pending[x-b.base]
			continue
		}
		found := false
		for j, f := range b.frontier {
			if f == x {
				out[i], found = b.fhashes[j], true
				break
			}
		}
		if !found {
			miss = append(miss, x)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	hs, err := b.store.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(miss) {
		return nil, storeError("store returned the wrong number of hashes", nil)
	}
	k := 0
	for i, x := range indexes {
		if x < b.base && !contains(b.frontier, x) {
			out[i] = hs[k]
			k++
		}
	}
	return out, nil
}

func contains(xs []int64, x int64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// frontierIndexes returns the storage indexes of the maximal complete
// subtrees of a tree of size n: every old hash that appending can read.
func frontierIndexes(n uint64) []int64 {
	var out []int64
	for level := 63; level >= 0; level-- {
		if n>>uint(level)&1 == 1 {
			out = append(out, tlog.StoredHashIndex(level, int64(n>>uint(level))-1))
		}
	}
	return out
}

func buildFromLeaves(oldSize uint64, leaves []Hash, r tlog.HashReader) ([]Hash, error) {
	br := &batchReader{
		base:  tlog.StoredHashIndex(0, int64(oldSize)),
		store: r,
	}
	// A batch of one reads what it needs in one call anyway; larger
	// batches prefetch the old frontier once instead of once per leaf.
	if len(leaves) > 1 {
		br.frontier = frontierIndexes(oldSize)
	}
	if len(br.frontier) > 0 {
		hs, err := r.ReadHashes(br.frontier)
		if err != nil {
			return nil, err
		}
		if len(hs) != len(br.frontier) {
			return nil, storeError("store returned the wrong number of hashes", nil)
		}
		br.fhashes = hs
	}
	want := tlog.StoredHashCount(int64(oldSize)+int64(len(leaves))) - tlog.StoredHashCount(int64(oldSize))
	br.pending = make([]Hash, 0, want)
	for i, lh := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(oldSize)+int64(i), lh, br)
		if err != nil {
			return nil, err
		}
		br.pending = append(br.pending, hs...)
	}
	return br.pending, nil
}
