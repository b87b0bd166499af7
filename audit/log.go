package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// An AuditLog records events and proves what it recorded: signed
// checkpoints, inclusion proofs and consistency proofs. [*Log] implements it
// over any [Store].
type AuditLog interface {
	// Append validates and seals e (its EventHash need not be set: a
	// drafted event, see [EventBuilder.Draft]), appends it and returns
	// its receipt once it is durable.
	Append(ctx context.Context, e Event) (Receipt, error)
	Checkpoint(ctx context.Context) (Checkpoint, error)
	InclusionProof(ctx context.Context, index, treeSize uint64) (tlog.RecordProof, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (tlog.TreeProof, error)
}

var _ AuditLog = (*Log)(nil)

// A Receipt says where an appended event is: its leaf index, its RFC 6962
// leaf hash and its contract event_hash. A Receipt is returned only once
// the entry is durable in the store.
type Receipt struct {
	Index     uint64
	LeafHash  Hash
	EventHash string
}

// Config configures a [Log]. Store, Signer and Verifier are required (New
// refuses a Config without any of them); Redactor and MaxBatch are optional.
type Config struct {
	// Store persists the log. Required.
	Store Store
	// Signer signs checkpoints; its name is the log's origin (C2SP: the
	// origin line and the key name match). Build it with [NewNoteSigner]
	// from an identity.Wallet's Signer. Required.
	Signer note.Signer
	// Verifier is the public half of Signer. Required: the log checks
	// the store's checkpoint with it when it opens and before trusting it.
	Verifier note.Verifier
	// Redactor rewrites events before they are hashed and stored. If nil,
	// events are stored as given.
	Redactor *Redactor
	// MaxBatch bounds how many events one group commit writes. If zero,
	// DefaultMaxBatch.
	MaxBatch int
	// Meter records MetricBatchSize and MetricCommitDuration, e.g.
	// provider.Meter("github.com/talosgo/talos/audit") of an OTel SDK
	// MeterProvider. If nil, nothing is recorded.
	Meter metric.Meter
}

// DefaultMaxBatch is the default bound of one group commit.
const DefaultMaxBatch = 4096

// A Log is an append-only, verifiable audit log: an RFC 6962 Merkle tree of
// sealed contract events with C2SP signed checkpoints. A Log is safe for
// concurrent use; concurrent Appends are group-committed: one caller writes
// a batch for all waiting callers with one durable store write.
type Log struct {
	cfg Config
	m   *logMetrics

	mu         sync.Mutex // guards queue and committing
	queue      []*group   // groups waiting for a commit; the last one is open
	committing bool

	// sealHint is the length of the last event Append sealed: the next
	// one is sealed into a buffer of about that size.
	sealHint atomic.Int64

	cpMu   sync.Mutex // guards latest
	latest Checkpoint
	hasCP  bool
}

// A group is the batch of one group commit: the sealed events of every
// caller that joined it, their leaf hashes (computed by each caller before
// joining, so hashing runs in parallel), and one channel closed when the
// batch is durable or failed.
type group struct {
	entries [][]byte
	leaves  []Hash
	first   uint64 // set before done is closed
	err     error  // set before done is closed
	done    chan struct{}
	// Room for the first event, so a group of one allocates once.
	entry0 [1][]byte
	leaf0  [1]Hash
}

// New returns a log over cfg.Store. It verifies the store's latest
// checkpoint, if any, against the store's tree: a store whose contents do
// not match its signed checkpoint is refused (TALOS_CRYPTO_ERROR).
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.Verifier == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: Config.Store, Config.Signer and Config.Verifier are required")
	}
	if cfg.Signer.Name() != cfg.Verifier.Name() || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: Config.Verifier is not the key of Config.Signer")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	m, err := newLogMetrics(cfg.Meter)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: Config.Meter", err)
	}
	l := &Log{cfg: cfg, m: m}
	raw, err := cfg.Store.Checkpoint(ctx)
	switch {
	case err == nil:
		cp, err := OpenCheckpoint(raw, cfg.Verifier)
		if err != nil {
			return nil, err
		}
		if err := l.checkAgainstStore(ctx, cp); err != nil {
			return nil, err
		}
		l.latest, l.hasCP = cp, true
	case contracts.CodeOf(err) != contracts.CodeNotFound:
		return nil, err
	}
	return l, nil
}

// checkAgainstStore verifies that the store's tree at cp.Size has cp's root.
func (l *Log) checkAgainstStore(ctx context.Context, cp Checkpoint) error {
	size, err := l.cfg.Store.Size(ctx)
	if err != nil {
		return err
	}
	if cp.Size > size {
		return cpError("store is behind its signed checkpoint")
	}
	root, err := l.treeHash(ctx, cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Hash {
		return cpError("store contents do not match its signed checkpoint")
	}
	return nil
}

// Origin returns the log's origin (its signer's name).
func (l *Log) Origin() string { return l.cfg.Signer.Name() }

// Append redacts, validates and seals e (setting its event_hash), appends
// it, and returns its receipt once it is durable. If ctx ends while the
// event waits for a group commit, Append returns ctx.Err() and the event
// may or may not be appended.
func (l *Log) Append(ctx context.Context, e Event) (Receipt, error) {
	if l.cfg.Redactor != nil {
		e = l.cfg.Redactor.Apply(e)
	}
	if err := e.Validate(); err != nil {
		return Receipt{}, err
	}
	// The buffer starts with the RFC 6962 leaf prefix 0x00, so the leaf
	// hash is one SHA-256 of the buffer without copying the entry. It is
	// sized from the events sealed before, so sealing rarely grows it.
	buf, err := e.seal(append(make([]byte, 0, l.sealSize()), 0x00))
	if err != nil {
		return Receipt{}, err
	}
	l.sealHint.Store(int64(len(buf)))
	return l.appendLeaf(ctx, buf, e.EventHash)
}

// sealSize is the capacity of the buffer an event is sealed into: the
// last sealed length with some room, at least 640 and at most
// MaxEventSize+1.
func (l *Log) sealSize() int {
	n := l.sealHint.Load()
	return int(min(max(n+n/8, 640), MaxEventSize+1))
}

// appendLeaf appends a validated, sealed event: buf is 0x00 followed by
// its canonical bytes.
func (l *Log) appendLeaf(ctx context.Context, buf []byte, eventHash string) (Receipt, error) {
	leaf := buf[1:]
	if len(leaf) > MaxEventSize {
		return Receipt{}, eventError("sealed event too large")
	}
	leafHash := Hash(sha256.Sum256(buf))
	l.mu.Lock()
	g := l.joinLocked(leaf, leafHash)
	j := uint64(len(g.entries) - 1)
	if !l.committing {
		// This caller commits its own group (the queue's first: no commit
		// is running, so every earlier group is done). Groups that formed
		// meanwhile are committed in order by a goroutine that lives
		// while there are any, so no caller waits for commits after its
		// own.
		l.committing = true
		next := l.popLocked()
		l.mu.Unlock()
		l.commit(context.WithoutCancel(ctx), next)
		l.mu.Lock()
		if len(l.queue) > 0 {
			go l.drain(context.WithoutCancel(ctx))
		} else {
			l.committing = false
		}
	}
	l.mu.Unlock()
	select {
	case <-g.done:
	case <-ctx.Done():
		select {
		case <-g.done:
		default:
			return Receipt{}, ctx.Err()
		}
	}
	if g.err != nil {
		return Receipt{}, g.err
	}
	return Receipt{Index: g.first + j, LeafHash: leafHash, EventHash: eventHash}, nil
}

// popLocked removes and returns the first group of the queue.
func (l *Log) popLocked() *group {
	next := l.queue[0]
	// The queue holds a few groups: shifting keeps its array.
	n := copy(l.queue, l.queue[1:])
	l.queue[n] = nil
	l.queue = l.queue[:n]
	return next
}

// drain commits the queued groups in order until the queue is empty, then
// ends the commit turn. It runs while l.committing is set, so it is the
// only committer.
func (l *Log) drain(ctx context.Context) {
	l.mu.Lock()
	for len(l.queue) > 0 {
		next := l.popLocked()
		l.mu.Unlock()
		l.commit(ctx, next)
		l.mu.Lock()
	}
	l.committing = false
	l.mu.Unlock()
}

// joinLocked adds a sealed event to the open group, opening a new one
// when there is none or it holds MaxBatch events.
func (l *Log) joinLocked(leaf []byte, h Hash) *group {
	var g *group
	if n := len(l.queue); n > 0 && len(l.queue[n-1].entries) < l.cfg.MaxBatch {
		g = l.queue[n-1]
	} else {
		g = &group{done: make(chan struct{})}
		g.entries, g.leaves = g.entry0[:0], g.leaf0[:0]
		l.queue = append(l.queue, g)
	}
	g.entries = append(g.entries, leaf)
	g.leaves = append(g.leaves, h)
	return g
}

// commit writes one group and wakes its callers.
func (l *Log) commit(ctx context.Context, g *group) {
	began := l.m.now()
	g.first, g.err = l.cfg.Store.Append(ctx, g.entries, func(oldSize uint64, r tlog.HashReader) ([]Hash, error) {
		return buildFromLeaves(oldSize, g.leaves, r)
	})
	l.m.commit(ctx, len(g.entries), began, g.err)
	close(g.done)
}

// AppendEntry appends one already sealed event given as JSON: it is parsed
// and verified with [ParseEvent]'s rules first, so the log never stores an
// event whose event_hash does not recompute. Redaction applies (a redacted
// event is sealed again, with a new event_hash).
//
// An event in exactly the canonical form [Event.Seal] writes (what another
// Log or SDK stores) takes a fast path: it is read in one pass, validated
// once, and sealed once; the result must reproduce the input byte for
// byte, which proves the value read and its event_hash. Anything else
// goes through ParseEvent, which accepts every JSON form of an event and
// reports what is wrong. Errors are ParseEvent's.
func (l *Log) AppendEntry(ctx context.Context, sealed []byte) (Receipt, error) {
	if len(sealed) > MaxEventSize {
		return Receipt{}, eventError("larger than " + strconv.Itoa(MaxEventSize) + " bytes")
	}
	if e, ok := readCanonical(sealed); ok {
		defer putMeta(e.Meta) // nothing below keeps the map
		if e.Validate() == nil {
			buf, err := e.seal(append(make([]byte, 0, len(sealed)+2), 0x00)) // seal writes one byte more, then drops it
			if err == nil && bytes.Equal(buf[1:], sealed) {
				if l.cfg.Redactor != nil {
					return l.Append(ctx, e)
				}
				return l.appendLeaf(ctx, buf, e.EventHash)
			}
		}
	}
	e, err := ParseEvent(sealed)
	if err != nil {
		return Receipt{}, err
	}
	if l.cfg.Redactor != nil {
		return l.Append(ctx, *e)
	}
	buf, err := e.seal(append(make([]byte, 0, 640), 0x00)) // validated by ParseEvent
	if err != nil {
		return Receipt{}, err
	}
	return l.appendLeaf(ctx, buf, e.EventHash)
}

// Size returns the number of durable entries.
func (l *Log) Size(ctx context.Context) (uint64, error) { return l.cfg.Store.Size(ctx) }

// emptyRoot is the RFC 6962 root of the empty tree.
var emptyRoot = Hash(sha256.Sum256(nil))

func (l *Log) treeHash(ctx context.Context, size uint64) (Hash, error) {
	if size == 0 {
		return emptyRoot, nil
	}
	return tlog.TreeHash(int64(size), hashReader{ctx, l.cfg.Store})
}

// Checkpoint returns a signed checkpoint of the current tree, signing a new
// one only when the tree grew since the last, and records it in the store
// (for the file store: the static checkpoint file).
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	size, err := l.cfg.Store.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if l.hasCP && l.latest.Size == size {
		return l.latest, nil
	}
	if l.hasCP && l.latest.Size > size {
		return Checkpoint{}, cpError("store shrank below a signed checkpoint")
	}
	root, err := l.treeHash(ctx, size)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := SignCheckpoint(Checkpoint{Origin: l.Origin(), Size: size, Hash: root}, l.cfg.Signer)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := l.cfg.Store.PutCheckpoint(ctx, size, cp.Note); err != nil {
		return Checkpoint{}, err
	}
	l.latest, l.hasCP = cp, true
	return cp, nil
}

// CheckpointAt returns a signed checkpoint of the tree of the given size
// (≤ the current size), for example to give a witness the tree it asked
// for. It does not record it in the store.
func (l *Log) CheckpointAt(ctx context.Context, size uint64) (Checkpoint, error) {
	cur, err := l.cfg.Store.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if size > cur {
		return Checkpoint{}, NotFound("tree size beyond the log")
	}
	root, err := l.treeHash(ctx, size)
	if err != nil {
		return Checkpoint{}, err
	}
	return SignCheckpoint(Checkpoint{Origin: l.Origin(), Size: size, Hash: root}, l.cfg.Signer)
}

// InclusionProof returns the proof that entry index is in the tree of
// treeSize entries. Errors: TALOS_INVALID_INPUT for index ≥ treeSize,
// ErrNotFound for a treeSize beyond the log.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) (tlog.RecordProof, error) {
	if index >= treeSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: index outside the tree")
	}
	if err := l.checkSize(ctx, treeSize); err != nil {
		return nil, err
	}
	p, err := tlog.ProveRecord(int64(treeSize), int64(index), hashReader{ctx, l.cfg.Store})
	if err != nil {
		return nil, storeError("cannot build inclusion proof", err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of newSize extends the
// tree of oldSize. Errors as for InclusionProof.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (tlog.TreeProof, error) {
	if oldSize > newSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: old size beyond new size")
	}
	if err := l.checkSize(ctx, newSize); err != nil {
		return nil, err
	}
	if oldSize == 0 || oldSize == newSize {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), hashReader{ctx, l.cfg.Store})
	if err != nil {
		return nil, storeError("cannot build consistency proof", err)
	}
	return p, nil
}

func (l *Log) checkSize(ctx context.Context, treeSize uint64) error {
	size, err := l.cfg.Store.Size(ctx)
	if err != nil {
		return err
	}
	if treeSize > size {
		return NotFound("tree size beyond the log")
	}
	return nil
}

// Entry returns the sealed event bytes at index.
func (l *Log) Entry(ctx context.Context, index uint64) ([]byte, error) {
	es, err := l.cfg.Store.ReadEntries(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	if len(es) != 1 {
		return nil, storeError("store returned the wrong number of entries", nil)
	}
	return es[0], nil
}

// Verify recomputes the whole tree from the stored entries and checks it
// against the stored hashes and the latest checkpoint. It is O(size); use it
// after a crash or to audit a store.
func (l *Log) Verify(ctx context.Context) (Checkpoint, error) {
	size, err := l.cfg.Store.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	mem := NewMemStore()
	const chunk = 4096
	for start := uint64(0); start < size; start += chunk {
		end := min(start+chunk, size)
		es, err := l.cfg.Store.ReadEntries(ctx, start, end)
		if err != nil {
			return Checkpoint{}, err
		}
		if uint64(len(es)) != end-start {
			return Checkpoint{}, storeError("store returned the wrong number of entries", nil)
		}
		if _, err := mem.Append(ctx, es, BuildHashes(es)); err != nil {
			return Checkpoint{}, err
		}
	}
	root, err := mem.root(size)
	if err != nil {
		return Checkpoint{}, err
	}
	stored, err := l.treeHash(ctx, size)
	if err != nil {
		return Checkpoint{}, err
	}
	if stored != root {
		return Checkpoint{}, cpError("stored hashes do not match the stored entries")
	}
	if raw, err := l.cfg.Store.Checkpoint(ctx); err == nil {
		cp, err := OpenCheckpoint(raw, l.cfg.Verifier)
		if err != nil {
			return Checkpoint{}, err
		}
		r, err := mem.root(cp.Size)
		if err != nil {
			return Checkpoint{}, err
		}
		if r != cp.Hash {
			return Checkpoint{}, cpError("entries do not match the signed checkpoint")
		}
	}
	return Checkpoint{Origin: l.Origin(), Size: size, Hash: root}, nil
}

func (m *MemStore) root(size uint64) (Hash, error) {
	if size == 0 {
		return emptyRoot, nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return tlog.TreeHash(int64(size), tlog.HashReaderFunc(m.readHashesLocked))
}
