package main

import (
	"context"
	"encoding/json"
	"sort"
	"sync"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/ratchet"
)

// a2aSession is the contract talos.a2a.session plus the opaque ratchet
// state blob, which the server stores and returns but never decrypts.
type a2aSession struct {
	SchemaID           string `json:"schema_id"`
	SchemaVersion      string `json:"schema_version"`
	SessionID          string `json:"session_id"`
	InitiatorID        string `json:"initiator_id"`
	ResponderID        string `json:"responder_id"`
	State              string `json:"state"`
	RatchetStateDigest string `json:"ratchet_state_digest,omitempty"`
	CreatedAt          string `json:"created_at"`
	ExpiresAt          string `json:"expires_at,omitempty"`

	blob []byte // latest ratchet_state_blob
}

// a2aGroup is the contract talos.a2a.group plus its member set.
type a2aGroup struct {
	SchemaID      string `json:"schema_id"`
	SchemaVersion string `json:"schema_version"`
	GroupID       string `json:"group_id"`
	OwnerID       string `json:"owner_id"`
	State         string `json:"state"`
	CreatedAt     string `json:"created_at"`

	members map[string]bool
}

// chainState is the head of an object's event chain: the digest of its last
// event and the number of events.
type chainState struct {
	Head string
	N    int
}

// A sessionUpdate runs inside the store's transaction: given the current
// session and its event chain head, it returns the new session and the
// sealed event to append (with its digest), or an error to abort. Nothing
// is written when it fails.
type sessionUpdate func(s *a2aSession, head chainState) (*a2aSession, json.RawMessage, string, error)

// A groupUpdate is the group counterpart of sessionUpdate.
type groupUpdate func(g *a2aGroup, head chainState) (*a2aGroup, json.RawMessage, string, error)

// a2aStore keeps sessions, groups, their hash-chained events and frames.
// Every method is atomic; implementations are safe for concurrent use.
type a2aStore interface {
	createSession(ctx context.Context, s *a2aSession, event json.RawMessage, digest string) error
	getSession(ctx context.Context, id string) (*a2aSession, error)
	updateSession(ctx context.Context, id string, fn sessionUpdate) (*a2aSession, error)
	// putFrame stores f unless its (session, sender, sender_seq) is taken:
	// an identical frame there is a duplicate (true, nil); a different one is
	// REPLAY_DETECTED; a sender_seq more than ratchet.MaxSeqAhead beyond the
	// sender's highest is STATE_SEQUENCE_GAP.
	putFrame(ctx context.Context, f *ratchet.Frame, raw []byte) (dup bool, err error)
	// listFrames returns frames of a session in arrival order after
	// position after (0: from the start), and the position of the last.
	listFrames(ctx context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error)
	createGroup(ctx context.Context, g *a2aGroup, event json.RawMessage, digest string) error
	getGroup(ctx context.Context, id string) (*a2aGroup, error)
	updateGroup(ctx context.Context, id string, fn groupUpdate) (*a2aGroup, error)
	// events returns the event chain of a session or group, oldest first.
	events(ctx context.Context, id string) ([]json.RawMessage, error)
}

func errNotFound(what string) error {
	return contracts.Errorf(contracts.CodeNotFound, what+" not found")
}

// memA2A is the in-memory a2aStore.
type memA2A struct {
	mu       sync.Mutex // guards everything below
	sessions map[string]*a2aSession
	groups   map[string]*a2aGroup
	chains   map[string][]json.RawMessage // session or group id → events
	heads    map[string]string
	frames   map[string][]json.RawMessage // session id → frames in arrival order
	tracker  *ratchet.SeqTracker
}

func newMemA2A() *memA2A {
	return &memA2A{
		sessions: map[string]*a2aSession{}, groups: map[string]*a2aGroup{},
		chains: map[string][]json.RawMessage{}, heads: map[string]string{},
		frames: map[string][]json.RawMessage{}, tracker: ratchet.NewSeqTracker(),
	}
}

func (m *memA2A) appendEventLocked(id string, ev json.RawMessage, digest string) {
	m.chains[id] = append(m.chains[id], ev)
	m.heads[id] = digest
}

func (m *memA2A) createSession(_ context.Context, s *a2aSession, ev json.RawMessage, digest string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.SessionID]; ok {
		return contracts.Errorf(contracts.CodeInvalidInput, "session exists")
	}
	c := *s
	m.sessions[s.SessionID] = &c
	m.appendEventLocked(s.SessionID, ev, digest)
	return nil
}

func (m *memA2A) getSession(_ context.Context, id string) (*a2aSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, errNotFound("session")
	}
	c := *s
	return &c, nil
}

func (m *memA2A) updateSession(_ context.Context, id string, fn sessionUpdate) (*a2aSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, errNotFound("session")
	}
	cur := *s
	next, ev, digest, err := fn(&cur, chainState{Head: m.heads[id], N: len(m.chains[id])})
	if err != nil {
		return nil, err
	}
	c := *next
	m.sessions[id] = &c
	m.appendEventLocked(id, ev, digest)
	return next, nil
}

func (m *memA2A) putFrame(_ context.Context, f *ratchet.Frame, raw []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.tracker.Check(f)
	if err != nil {
		return false, err
	}
	if d == ratchet.Duplicate {
		return true, nil
	}
	m.tracker.Commit(f)
	m.frames[f.SessionID] = append(m.frames[f.SessionID], append(json.RawMessage(nil), raw...))
	return false, nil
}

func (m *memA2A) listFrames(_ context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.frames[sessionID]
	if after >= uint64(len(all)) {
		return nil, after, nil
	}
	end := min(uint64(len(all)), after+uint64(limit))
	return append([]json.RawMessage(nil), all[after:end]...), end, nil
}

func (m *memA2A) createGroup(_ context.Context, g *a2aGroup, ev json.RawMessage, digest string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g.GroupID]; ok {
		return contracts.Errorf(contracts.CodeInvalidInput, "group exists")
	}
	m.groups[g.GroupID] = cloneGroup(g)
	m.appendEventLocked(g.GroupID, ev, digest)
	return nil
}

func cloneGroup(g *a2aGroup) *a2aGroup {
	c := *g
	c.members = make(map[string]bool, len(g.members))
	for k, v := range g.members {
		c.members[k] = v
	}
	return &c
}

func (m *memA2A) getGroup(_ context.Context, id string) (*a2aGroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, errNotFound("group")
	}
	return cloneGroup(g), nil
}

func (m *memA2A) updateGroup(_ context.Context, id string, fn groupUpdate) (*a2aGroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, errNotFound("group")
	}
	next, ev, digest, err := fn(cloneGroup(g), chainState{Head: m.heads[id], N: len(m.chains[id])})
	if err != nil {
		return nil, err
	}
	m.groups[id] = cloneGroup(next)
	m.appendEventLocked(id, ev, digest)
	return next, nil
}

func (m *memA2A) events(_ context.Context, id string) ([]json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, ok := m.chains[id]
	if !ok {
		return nil, errNotFound("object")
	}
	return append([]json.RawMessage(nil), evs...), nil
}

// sortedMembers lists a group's members.
func sortedMembers(g *a2aGroup) []string {
	out := make([]string, 0, len(g.members))
	for k := range g.members {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
