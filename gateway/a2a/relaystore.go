package a2a

import (
	"context"
	"encoding/json"
	"sort"
	"sync"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/ratchet"
)

// Session is the contract talos.a2a.session plus the opaque ratchet state
// blob, which the relay stores and returns but never decrypts.
type Session struct {
	SchemaID           string `json:"schema_id"`
	SchemaVersion      string `json:"schema_version"`
	SessionID          string `json:"session_id"`
	InitiatorID        string `json:"initiator_id"`
	ResponderID        string `json:"responder_id"`
	State              string `json:"state"`
	RatchetStateDigest string `json:"ratchet_state_digest,omitempty"`
	CreatedAt          string `json:"created_at"`
	ExpiresAt          string `json:"expires_at,omitempty"`

	// RatchetStateBlob is the latest ratchet_state_blob (sealed by the
	// participant; never opened by the relay).
	RatchetStateBlob []byte `json:"-"`
}

// Group is the contract talos.a2a.group plus its member set.
type Group struct {
	SchemaID      string `json:"schema_id"`
	SchemaVersion string `json:"schema_version"`
	GroupID       string `json:"group_id"`
	OwnerID       string `json:"owner_id"`
	State         string `json:"state"`
	CreatedAt     string `json:"created_at"`

	// Members is the member set (the owner included).
	Members map[string]bool `json:"-"`
}

// SortedMembers lists the group's members in order.
func (g *Group) SortedMembers() []string {
	out := make([]string, 0, len(g.Members))
	for k := range g.Members {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Clone returns a deep copy of g.
func (g *Group) Clone() *Group {
	c := *g
	c.Members = make(map[string]bool, len(g.Members))
	for k, v := range g.Members {
		c.Members[k] = v
	}
	return &c
}

// ChainHead is the head of an object's event chain: the digest of its
// last event and the number of events.
type ChainHead struct {
	Head string
	N    int
}

// A SessionUpdate runs inside the store's transaction: given the current
// session and its event chain head, it returns the new session and the
// sealed event to append (with its digest), or an error to abort. Nothing
// is written when it fails.
type SessionUpdate func(s *Session, head ChainHead) (*Session, json.RawMessage, string, error)

// A GroupUpdate is the group counterpart of [SessionUpdate].
type GroupUpdate func(g *Group, head ChainHead) (*Group, json.RawMessage, string, error)

// Store keeps the relay's sessions, groups, their hash-chained events and
// frames. Every method is atomic; implementations are safe for concurrent
// use and return *contracts.Error (NOT_FOUND for a missing object,
// INTERNAL, without back-end details in the message, when the back-end
// fails). [MemStore] is in memory; gateway/a2a/postgres shares one
// state between replicas. Both pass gateway/a2a/a2atest.Run.
type Store interface {
	CreateSession(ctx context.Context, s *Session, event json.RawMessage, digest string) error
	GetSession(ctx context.Context, id string) (*Session, error)
	UpdateSession(ctx context.Context, id string, fn SessionUpdate) (*Session, error)
	// PutFrame stores f (raw is its encoding) under the rule of
	// [CheckSenderSeq], applied atomically per session.
	PutFrame(ctx context.Context, f *ratchet.Frame, raw []byte) (dup bool, err error)
	// ListFrames returns frames of a session in arrival order after
	// position after (0: from the start), and the position of the last.
	ListFrames(ctx context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error)
	CreateGroup(ctx context.Context, g *Group, event json.RawMessage, digest string) error
	GetGroup(ctx context.Context, id string) (*Group, error)
	UpdateGroup(ctx context.Context, id string, fn GroupUpdate) (*Group, error)
	// Events returns the event chain of a session or group, oldest first.
	Events(ctx context.Context, id string) ([]json.RawMessage, error)
}

// SeqState is what a store knows of one (session, sender) frame stream
// when a frame arrives.
type SeqState struct {
	// UsedDigest is the frame_digest of the stored frame with the new
	// frame's sender_seq, or "" when that sender_seq is free.
	UsedDigest string
	// Highest is the highest sender_seq stored for the stream (0 when
	// none).
	Highest uint64
}

// CheckSenderSeq is the relay's sender_seq rule, the one both stores
// apply (inside the transaction that then stores the frame): an identical
// resend (same sender_seq, same frame_digest) is a duplicate, stored once
// (dup true, nil); a different frame with a used sender_seq is
// REPLAY_DETECTED; a sender_seq more than ratchet.MaxSeqAhead beyond the
// stream's highest is STATE_SEQUENCE_GAP. A free sender_seq below the
// highest (a gap filled late) is accepted: the relay keeps every frame's
// digest, so it needs no "too old" window.
func CheckSenderSeq(f *ratchet.Frame, st SeqState) (dup bool, err error) {
	if st.UsedDigest != "" {
		if st.UsedDigest == f.FrameDigest {
			return true, nil
		}
		return false, contracts.New(contracts.CodeReplayDetected, "sender_seq already used by another frame")
	}
	if f.SenderSeq > st.Highest && f.SenderSeq-st.Highest > ratchet.MaxSeqAhead {
		return false, contracts.New(contracts.CodeStateSequenceGap, "sender_seq too far ahead")
	}
	return false, nil
}

// ErrNotFound returns the NOT_FOUND error of a missing relay object
// ("session", "group", ...).
func ErrNotFound(what string) error {
	return contracts.New(contracts.CodeNotFound, what+" not found")
}

// MemStore is the in-memory [Store].
type MemStore struct {
	mu       sync.Mutex // guards everything below
	sessions map[string]*Session
	groups   map[string]*Group
	chains   map[string][]json.RawMessage // session or group id → events
	heads    map[string]string
	frames   map[string][]json.RawMessage // session id → frames in arrival order
	streams  map[[2]string]*memStream     // (session, sender) → its sender_seq state
}

type memStream struct {
	highest uint64
	digests map[uint64]string
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{
		sessions: map[string]*Session{}, groups: map[string]*Group{},
		chains: map[string][]json.RawMessage{}, heads: map[string]string{},
		frames: map[string][]json.RawMessage{}, streams: map[[2]string]*memStream{},
	}
}

// Len reports how many sessions and groups m holds.
func (m *MemStore) Len() (sessions, groups int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions), len(m.groups)
}

func (m *MemStore) appendEventLocked(id string, ev json.RawMessage, digest string) {
	m.chains[id] = append(m.chains[id], append(json.RawMessage(nil), ev...))
	m.heads[id] = digest
}

func cloneSession(s *Session) *Session {
	c := *s
	c.RatchetStateBlob = append([]byte(nil), s.RatchetStateBlob...)
	return &c
}

// CreateSession implements [Store].
func (m *MemStore) CreateSession(_ context.Context, s *Session, ev json.RawMessage, digest string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.SessionID]; ok {
		return contracts.New(contracts.CodeInvalidInput, "session exists")
	}
	m.sessions[s.SessionID] = cloneSession(s)
	m.appendEventLocked(s.SessionID, ev, digest)
	return nil
}

// GetSession implements [Store].
func (m *MemStore) GetSession(_ context.Context, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, ErrNotFound("session")
	}
	return cloneSession(s), nil
}

// UpdateSession implements [Store].
func (m *MemStore) UpdateSession(_ context.Context, id string, fn SessionUpdate) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, ErrNotFound("session")
	}
	next, ev, digest, err := fn(cloneSession(s), ChainHead{Head: m.heads[id], N: len(m.chains[id])})
	if err != nil {
		return nil, err
	}
	m.sessions[id] = cloneSession(next)
	m.appendEventLocked(id, ev, digest)
	return next, nil
}

// PutFrame implements [Store].
func (m *MemStore) PutFrame(_ context.Context, f *ratchet.Frame, raw []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[f.SessionID]; !ok {
		return false, ErrNotFound("session")
	}
	k := [2]string{f.SessionID, f.SenderID}
	st := m.streams[k]
	var cur SeqState
	if st != nil {
		cur = SeqState{UsedDigest: st.digests[f.SenderSeq], Highest: st.highest}
	}
	dup, err := CheckSenderSeq(f, cur)
	if err != nil || dup {
		return dup, err
	}
	if st == nil {
		st = &memStream{digests: map[uint64]string{}}
		m.streams[k] = st
	}
	st.digests[f.SenderSeq] = f.FrameDigest
	st.highest = max(st.highest, f.SenderSeq)
	m.frames[f.SessionID] = append(m.frames[f.SessionID], append(json.RawMessage(nil), raw...))
	return false, nil
}

// ListFrames implements [Store].
func (m *MemStore) ListFrames(_ context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.frames[sessionID]
	if after >= uint64(len(all)) || limit <= 0 {
		return nil, after, nil
	}
	end := min(uint64(len(all)), after+uint64(limit))
	return append([]json.RawMessage(nil), all[after:end]...), end, nil
}

// CreateGroup implements [Store].
func (m *MemStore) CreateGroup(_ context.Context, g *Group, ev json.RawMessage, digest string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g.GroupID]; ok {
		return contracts.New(contracts.CodeInvalidInput, "group exists")
	}
	m.groups[g.GroupID] = g.Clone()
	m.appendEventLocked(g.GroupID, ev, digest)
	return nil
}

// GetGroup implements [Store].
func (m *MemStore) GetGroup(_ context.Context, id string) (*Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, ErrNotFound("group")
	}
	return g.Clone(), nil
}

// UpdateGroup implements [Store].
func (m *MemStore) UpdateGroup(_ context.Context, id string, fn GroupUpdate) (*Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, ErrNotFound("group")
	}
	next, ev, digest, err := fn(g.Clone(), ChainHead{Head: m.heads[id], N: len(m.chains[id])})
	if err != nil {
		return nil, err
	}
	m.groups[id] = next.Clone()
	m.appendEventLocked(id, ev, digest)
	return next, nil
}

// Events implements [Store].
func (m *MemStore) Events(_ context.Context, id string) ([]json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, ok := m.chains[id]
	if !ok {
		return nil, ErrNotFound("object")
	}
	return append([]json.RawMessage(nil), evs...), nil
}
