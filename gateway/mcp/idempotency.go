package mcp

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Members of a tools/call's params._meta that the gateway reads. They are
// part of the attested body.
const (
	// MetaIdempotencyKey carries the idempotency key of a call: required
	// for tools whose registry entry requires one (every write), 1 to
	// [MaxIdempotencyKey] bytes of ASCII letters, digits and "-_.:".
	MetaIdempotencyKey = "talos/idempotency_key"
	// MetaArgsDigest, if present, is the lowercase hex SHA-256 of the
	// canonical arguments the client means to send; a call whose arguments
	// have another digest is refused (TALOS_INVALID_INPUT).
	MetaArgsDigest = "talos/args_digest"
	// MetaExpectedDocumentHashes, if present, is a list of {pointer, hash}
	// (capability.DocHash): for a document tool, the document at pointer
	// must have that hash (DOC_HASH_MISMATCH).
	MetaExpectedDocumentHashes = "talos/expected_document_hashes"
	// MetaReplayed is set (true) in the _meta of a result replayed for a
	// repeated idempotency key.
	MetaReplayed = "talos/idempotent_replay"
)

// Idempotency limits and defaults.
const (
	MaxIdempotencyKey = 128
	// MaxRememberedResult bounds the result remembered for a key: a
	// larger result is answered once, and a repeat of its key is refused
	// (REPLAY_DETECTED) rather than executed again.
	MaxRememberedResult   = 256 << 10
	DefaultIdempotencyTTL = 24 * time.Hour
	maxDocHashes          = 64
)

// writeMeta is what a call's _meta says about writes.
type writeMeta struct {
	key        string
	argsDigest string
	docHashes  []capability.DocHash
}

// ParseWriteMeta checks the gateway's members of a tools/call's
// params._meta (MetaIdempotencyKey, MetaArgsDigest,
// MetaExpectedDocumentHashes) and returns the idempotency key ("" when
// absent). Other members are ignored. Errors are *contracts.Error with
// code TALOS_INVALID_INPUT.
func ParseWriteMeta(meta map[string]any) (key string, err error) {
	w, err := parseWriteMeta(meta)
	return w.key, err
}

func parseWriteMeta(meta map[string]any) (writeMeta, error) {
	var w writeMeta
	bad := func(msg string) (writeMeta, error) {
		return writeMeta{}, contracts.New(contracts.CodeInvalidInput, "mcp: params._meta: "+msg)
	}
	if v, ok := meta[MetaIdempotencyKey]; ok {
		s, isStr := v.(string)
		if !isStr || s == "" || len(s) > MaxIdempotencyKey {
			return bad(MetaIdempotencyKey + " must be a string of 1 to 128 bytes")
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
				return bad(MetaIdempotencyKey + " holds a character outside [A-Za-z0-9._:-]")
			}
		}
		w.key = s
	}
	if v, ok := meta[MetaArgsDigest]; ok {
		s, isStr := v.(string)
		if !isStr || len(s) != 64 || !isLowerHex(s) {
			return bad(MetaArgsDigest + " must be 64 lowercase hex digits")
		}
		w.argsDigest = s
	}
	if v, ok := meta[MetaExpectedDocumentHashes]; ok {
		items, isList := v.([]any)
		if !isList || len(items) > maxDocHashes {
			return bad(MetaExpectedDocumentHashes + " must be a list of at most 64 {pointer, hash}")
		}
		for _, it := range items {
			m, isObj := it.(map[string]any)
			p, pok := m["pointer"].(string)
			h, hok := m["hash"].(string)
			if !isObj || len(m) != 2 || !pok || !hok || (p != "" && p[0] != '/') || len(h) != 64 || !isLowerHex(h) {
				return bad(MetaExpectedDocumentHashes + " entries are {pointer: JSON pointer, hash: 64 lowercase hex}")
			}
			w.docHashes = append(w.docHashes, capability.DocHash{Pointer: p, Hash: h})
		}
	}
	return w, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// An IdempotencyRecord is what a store remembers under a key.
type IdempotencyRecord struct {
	// Digest is the args digest of the call that claimed the key.
	Digest string
	// Done is false while that call is in flight.
	Done bool
	// Result is the JSON of its CallToolResult, when it succeeded; Code
	// the contract code it failed with otherwise.
	Result []byte
	Code   string
}

// An IdempotencyStore remembers the outcome of calls by key (the gateway
// derives the key from the principal, the tool and the client's
// idempotency key). Implementations must be safe for concurrent use and
// fail closed: an error refuses the call.
type IdempotencyStore interface {
	// Claim records an in-flight call with digest under key for ttl, or,
	// when key is already held and not expired, returns its record with
	// claimed false.
	Claim(ctx context.Context, key, digest string, ttl time.Duration) (rec IdempotencyRecord, claimed bool, err error)
	// Complete stores the outcome of the call that claimed key.
	Complete(ctx context.Context, key string, rec IdempotencyRecord) error
	// Release forgets key while its call is in flight (it was never
	// sent); a done key stays.
	Release(ctx context.Context, key string) error
}

// ErrIdempotencyFull is returned (wrapped, code RATE_LIMITED, retryable)
// by a MemIdempotencyStore that holds its maximum of unexpired keys or
// bytes.
var ErrIdempotencyFull = errors.New("mcp: idempotency store full")

// MemIdempotencyConfig bounds a MemIdempotencyStore.
type MemIdempotencyConfig struct {
	// MaxKeys bounds the keys held (default 100,000) and MaxBytes their
	// remembered results (default 64 MiB). When either is reached and no
	// key has expired, new claims are refused (ErrIdempotencyFull).
	MaxKeys  int
	MaxBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// A MemIdempotencyStore is an in-process IdempotencyStore with bounded
// memory: keys expire after their TTL and are evicted oldest first.
type MemIdempotencyStore struct {
	cfg   MemIdempotencyConfig
	mu    sync.Mutex
	byKey map[string]*list.Element
	order *list.List // of *memIdem, oldest claim first
	bytes int64
}

type memIdem struct {
	key     string
	rec     IdempotencyRecord
	expires time.Time
}

// NewMemIdempotencyStore returns an empty store.
func NewMemIdempotencyStore(cfg MemIdempotencyConfig) *MemIdempotencyStore {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemIdempotencyStore{cfg: cfg, byKey: map[string]*list.Element{}, order: list.New()}
}

// Len returns the number of keys held (expired ones included until they
// are evicted).
func (m *MemIdempotencyStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byKey)
}

func (m *MemIdempotencyStore) remove(el *list.Element) {
	e := el.Value.(*memIdem)
	m.order.Remove(el)
	delete(m.byKey, e.key)
	m.bytes -= int64(len(e.rec.Result))
}

// evict drops expired keys. Keys are claimed with one TTL per gateway, so
// the oldest claims expire first; a key with a longer TTL ahead of
// shorter ones is dropped when it expires or is reached.
func (m *MemIdempotencyStore) evict(now time.Time) {
	for el := m.order.Front(); el != nil; el = m.order.Front() {
		if now.Before(el.Value.(*memIdem).expires) {
			return
		}
		m.remove(el)
	}
}

// Claim implements IdempotencyStore.
func (m *MemIdempotencyStore) Claim(_ context.Context, key, digest string, ttl time.Duration) (IdempotencyRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	m.evict(now)
	if el, ok := m.byKey[key]; ok {
		e := el.Value.(*memIdem)
		if now.Before(e.expires) {
			return e.rec, false, nil
		}
		m.remove(el)
	}
	if len(m.byKey) >= m.cfg.MaxKeys || m.bytes >= m.cfg.MaxBytes {
		return IdempotencyRecord{}, false, contracts.Wrap(contracts.CodeRateLimited, "mcp: too many idempotency keys held", ErrIdempotencyFull).WithRetryable(true)
	}
	m.byKey[key] = m.order.PushBack(&memIdem{key: key, rec: IdempotencyRecord{Digest: digest}, expires: now.Add(ttl)})
	return IdempotencyRecord{Digest: digest}, true, nil
}

// Complete implements IdempotencyStore. A key that expired meanwhile is
// not stored again.
func (m *MemIdempotencyStore) Complete(_ context.Context, key string, rec IdempotencyRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memIdem)
	m.bytes += int64(len(rec.Result)) - int64(len(e.rec.Result))
	rec.Result = append([]byte(nil), rec.Result...)
	e.rec = rec
	return nil
}

// Release implements IdempotencyStore; a done key stays.
func (m *MemIdempotencyStore) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byKey[key]; ok && !el.Value.(*memIdem).rec.Done {
		m.remove(el)
	}
	return nil
}

// idemKey scopes a client's key to its principal and tool.
func idemKey(did identity.DID, upstream, tool, key string) string {
	h := sha256.New()
	for _, s := range []string{did.String(), upstream, tool, key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idempotent runs a call to a tool that requires an idempotency key: the
// first call with a key is forwarded and its outcome remembered; a repeat
// with the same arguments gets that outcome (replayed true) without
// reaching the upstream; a repeat with other arguments, or while the first
// is in flight, is refused with REPLAY_DETECTED.
func (g *Gateway) idempotent(ctx context.Context, did identity.DID, upstream, tool, digest, key string, canon []byte, doc *capability.DocSpec, gov *governedArgs) (*sdk.CallToolResult, bool, error) {
	if key == "" {
		return nil, false, contracts.New(contracts.CodeInvalidInput, "mcp: this tool requires params._meta."+MetaIdempotencyKey)
	}
	k := idemKey(did, upstream, tool, key)
	rec, claimed, err := g.idem.Claim(ctx, k, digest, g.cfg.IdempotencyTTL)
	if err != nil {
		if contracts.CodeOf(err) == contracts.CodeRateLimited {
			return nil, false, err
		}
		return nil, false, contracts.Wrap(contracts.CodeInternal, "mcp: idempotency store failed", err)
	}
	if !claimed {
		switch {
		case rec.Digest != digest:
			return nil, false, contracts.New(contracts.CodeReplayDetected, "mcp: idempotency key reused with other arguments")
		case !rec.Done && gov != nil:
			// A governed call's outcome is in its trace: a finished one
			// (its key not yet marked done, e.g. after a crash) answers.
			res, err := g.governedReplay(ctx, k)
			if errors.Is(err, ErrTraceNotFound) {
				// Claimed, its trace not yet made: in flight.
				return nil, false, contracts.New(contracts.CodeReplayDetected, "mcp: a call with this idempotency key is in flight")
			}
			if err != nil {
				return nil, false, err
			}
			return res, true, nil
		case !rec.Done:
			return nil, false, contracts.New(contracts.CodeReplayDetected, "mcp: a call with this idempotency key is in flight")
		case rec.Code != "":
			return nil, false, contracts.New(contracts.Code(rec.Code), "mcp: the call with this idempotency key failed")
		}
		var res sdk.CallToolResult
		if err := json.Unmarshal(rec.Result, &res); err != nil {
			return nil, false, contracts.Wrap(contracts.CodeInternal, "mcp: remembered result unreadable", err)
		}
		if res.Meta == nil {
			res.Meta = sdk.Meta{}
		}
		res.Meta[MetaReplayed] = true
		return &res, true, nil
	}
	var res *sdk.CallToolResult
	if gov != nil {
		res, err = g.governedCall(ctx, did, gov.tok, upstream, tool, digest, key, k, canon)
	} else {
		res, err = g.forward(ctx, upstream, tool, canon, doc)
	}
	// The outcome is stored with a context of its own: a client that
	// hangs up must not leave the key in flight.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ConnectTimeout)
	defer cancel()
	if err != nil {
		if errors.Is(err, errGovernedRunning) {
			// The trace goes on; it marks the key done when it ends.
			return nil, false, err
		}
		if errors.Is(err, errNotSent) {
			_ = g.idem.Release(sctx, k)
		} else {
			// The upstream may have acted: a repeat gets this failure, a
			// retry needs a new key.
			_ = g.idem.Complete(sctx, k, IdempotencyRecord{Digest: digest, Done: true, Code: string(contracts.CodeOf(err))})
		}
		return nil, false, err
	}
	b, err := json.Marshal(res)
	stored := IdempotencyRecord{Digest: digest, Done: true, Result: b}
	if err != nil || len(b) > MaxRememberedResult {
		stored = IdempotencyRecord{Digest: digest, Done: true, Code: string(contracts.CodeReplayDetected)}
	}
	// If storing fails the key stays claimed (in flight) until it
	// expires: a repeat is refused, never executed again.
	_ = g.idem.Complete(sctx, k, stored)
	return res, false, nil
}
