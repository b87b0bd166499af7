package ratchet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Group event constants (contract a2a/group_event).
const (
	GroupEventSchemaID = "talos.a2a.group_event"
	EventGroupCreated  = "group_created"
	EventMemberAdded   = "member_added"
	EventMemberRemoved = "member_removed"
	EventGroupClosed   = "group_closed"
)

// HKDF infos of the group sender-key chains (library extension).
const (
	infoGroupMessage = "talos-group-sender-message"
	infoGroupChain   = "talos-group-sender-chain"
	groupMsgDomain   = "talos.group.message.v1\x00"
	groupCtlType     = "talos.group.control.v1"
)

// GroupConfig tunes a Group. Its zero value is ready to use.
type GroupConfig struct {
	// Rand is the source of sender keys and nonces. If nil,
	// crypto/rand.Reader is used.
	Rand io.Reader
	// Now returns the time for event timestamps. If nil, time.Now is used.
	Now func() time.Time
}

// A GroupOutbound is a control message for one member, already encrypted
// with the pairwise session to that member. Deliver it to To, who passes it
// to Group.Handle.
type GroupOutbound struct {
	To   identity.DID
	Wire []byte
}

// A Group is one member's view of a group channel (library extension; the
// contract defines group membership only).
//
// The owner records membership as hash-chained contract group_events
// (previous_digest; event_digest = hex sha256(JCS(event − event_digest)))
// and distributes them over pairwise Sessions. Each member has a sender key
// (a symmetric hash chain) that it sends to every other member over the
// pairwise sessions; a group message is encrypted once under the sender's
// chain and signed with the sender's identity wallet (Ed25519), so members,
// who all know each other's chain keys, still cannot forge each other.
// Every removal makes every remaining member rotate its sender key and send
// the new one only to the remaining members, so a removed member cannot read
// anything sent after the rotation.
//
// Messages a member sends between the owner's removal and its own handling
// of the removal event still use its old key: deliver membership events
// promptly.
//
// A Group is safe for concurrent use.
type Group struct {
	*groupRef
}

// groupRef keeps the sender keys and sessions two pointers away; see
// hiddenNote.
type groupRef struct{ *groupState }

type groupState struct {
	cfg   GroupConfig
	id    string
	self  *identity.Wallet
	owner identity.DID

	mu      sync.Mutex // guards everything below
	chain   *audit.Chain
	events  [][]byte
	known   map[[32]byte]struct{}         // SHA-256 of every event in events
	peers   map[identity.DID]*Session     // pairwise sessions
	members map[identity.DID]*groupMember // current members except self
	joined  bool                          // self is a member
	closed  bool
	me      senderChain
	sentTo  map[identity.DID]uint64         // epoch of self's sender key each member has
	pending map[identity.DID]*senderKeyJSON // keys from peers whose member_added has not arrived yet
	early   [][]byte                        // owner events that arrived before their predecessor
}

type groupMember struct {
	recv map[uint64]*recvChain // by sender-key epoch: current and previous
}

type senderChain struct {
	epoch uint64
	ck    [32]byte
	n     uint32
}

type recvChain struct {
	ck      [32]byte
	n       uint32
	skipped map[uint32][32]byte
}

func (c GroupConfig) withDefaults() GroupConfig {
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func errGroup(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "ratchet: group: "+msg)
}

// CreateGroup creates a group owned by self and records group_created.
func CreateGroup(self *identity.Wallet, cfg GroupConfig) (*Group, error) {
	if self == nil {
		return nil, errGroup("nil wallet")
	}
	cfg = cfg.withDefaults()
	g := newGroup(contracts.NewUUIDv7At(cfg.Now()), self, self.DID(), cfg)
	g.joined = true
	if err := g.rotateLocked(); err != nil {
		return nil, err
	}
	if _, err := g.appendEventLocked(EventGroupCreated, identity.DID{}); err != nil {
		return nil, err
	}
	return g, nil
}

// JoinGroup prepares self's view of group id owned by owner. Connect the
// pairwise session with the owner; the view is then filled by the owner's
// control messages (Handle), starting with the full event log sent when the
// owner adds self.
func JoinGroup(id string, owner identity.DID, self *identity.Wallet, cfg GroupConfig) (*Group, error) {
	if self == nil || owner.IsZero() || !contracts.IsUUIDv7(id) {
		return nil, errGroup("JoinGroup needs a wallet, an owner and a UUIDv7 group id")
	}
	return newGroup(id, self, owner, cfg.withDefaults()), nil
}

func newGroup(id string, self *identity.Wallet, owner identity.DID, cfg GroupConfig) *Group {
	return &Group{groupRef: &groupRef{&groupState{
		cfg: cfg, id: id, self: self, owner: owner,
		chain:   audit.NewChain(audit.GroupEventChain),
		known:   make(map[[32]byte]struct{}),
		peers:   make(map[identity.DID]*Session),
		members: make(map[identity.DID]*groupMember),
		sentTo:  make(map[identity.DID]uint64),
		pending: make(map[identity.DID]*senderKeyJSON),
	}}}
}

// ID returns the group id (a UUIDv7).
func (g *Group) ID() string { return g.id }

// Members returns the other current members, sorted by DID.
func (g *Group) Members() []identity.DID {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]identity.DID, 0, len(g.members))
	for d := range g.members {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b identity.DID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Events returns the group_event log (canonical JSON), oldest first.
func (g *Group) Events() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events)
}

// Connect registers the pairwise session with did (before or after its
// membership event) and returns the control messages that become
// deliverable, such as self's sender key. The group owns s from now on.
// Membership changes need sessions that can send in both directions: one
// set up with AcceptAuthenticated, or one whose responder has received a
// message; AddMember and RemoveMember refuse, changing nothing, otherwise.
func (g *Group) Connect(did identity.DID, s *Session) ([]GroupOutbound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s == nil || did.IsZero() || did == g.self.DID() {
		return nil, errGroup("bad pairwise session")
	}
	if len(g.peers) >= MaxGroupMembers {
		return nil, errGroup("too many pairwise sessions")
	}
	g.peers[did] = s
	return g.flushLocked()
}

type groupEvent struct {
	SchemaID       string `json:"schema_id"`
	SchemaVersion  string `json:"schema_version"`
	EventID        string `json:"event_id"`
	GroupID        string `json:"group_id"`
	ActorID        string `json:"actor_id"`
	TargetID       string `json:"target_id,omitempty"`
	EventType      string `json:"event_type"`
	TS             string `json:"ts"`
	EventDigest    string `json:"event_digest,omitempty"`
	PreviousDigest string `json:"previous_digest,omitempty"`
}

func (g *Group) appendEventLocked(typ string, target identity.DID) ([]byte, error) {
	now := g.cfg.Now()
	ev := groupEvent{
		SchemaID: GroupEventSchemaID, SchemaVersion: "v1",
		EventID: contracts.NewUUIDv7At(now), GroupID: g.id, ActorID: g.owner.String(),
		EventType: typ, TS: now.UTC().Format(frameTimeLayout),
	}
	if !target.IsZero() {
		ev.TargetID = target.String()
	}
	chain := *g.chain // commit the chain only once the event is valid
	sealed, _, err := chain.Seal(ev)
	if err != nil {
		return nil, err
	}
	if err := contracts.Validate("a2a/group_event", sealed); err != nil {
		return nil, err
	}
	*g.chain = chain
	g.addEventLocked(sealed)
	return sealed, nil
}

// AddMember (owner only) records member_added for did, whose pairwise
// session must be connected, and returns the control messages: the full
// event log and self's sender key for the new member, the new event for
// the others.
func (g *Group) AddMember(did identity.DID) ([]GroupOutbound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.self.DID() != g.owner || g.closed {
		return nil, errGroup("only the owner of an open group adds members")
	}
	if g.members[did] != nil || did == g.self.DID() {
		return nil, errGroup("already a member")
	}
	if g.peers[did] == nil {
		return nil, errGroup("connect the member's pairwise session first")
	}
	if len(g.members) >= MaxGroupMembers {
		return nil, errGroup("too many members")
	}
	if err := g.checkSendableLocked(did); err != nil {
		return nil, err
	}
	ev, err := g.appendEventLocked(EventMemberAdded, did)
	if err != nil {
		return nil, err
	}
	var out []GroupOutbound
	for d := range g.members {
		if g.peers[d] == nil {
			continue
		}
		o, err := g.controlLocked(d, [][]byte{ev}, false)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	g.members[did] = &groupMember{recv: make(map[uint64]*recvChain)}
	o, err := g.controlLocked(did, g.events, true)
	if err != nil {
		return nil, err
	}
	return append(out, o), nil
}

// RemoveMember (owner only) records member_removed for did, forgets its
// keys, rotates self's sender key and returns the event and the new key for
// every remaining member. Each of them rotates in turn when it handles the
// event.
func (g *Group) RemoveMember(did identity.DID) ([]GroupOutbound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.self.DID() != g.owner || g.closed {
		return nil, errGroup("only the owner of an open group removes members")
	}
	if g.members[did] == nil {
		return nil, errGroup("not a member")
	}
	if err := g.checkSendableLocked(); err != nil {
		return nil, err
	}
	ev, err := g.appendEventLocked(EventMemberRemoved, did)
	if err != nil {
		return nil, err
	}
	var out []GroupOutbound
	if g.peers[did] != nil {
		// The removed member learns of its removal (and nothing else).
		o, err := g.controlLocked(did, [][]byte{ev}, false)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	delete(g.members, did)
	delete(g.sentTo, did)
	if err := g.rotateLocked(); err != nil {
		return nil, err
	}
	for d := range g.members {
		if g.peers[d] == nil {
			continue
		}
		o, err := g.controlLocked(d, [][]byte{ev}, true)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// checkSendableLocked fails unless every connected member (and extra) has
// a pairwise session that can send now, so that membership changes are
// not recorded without being distributable.
//
// One pass over the members, no sorting: O(members). The member named is
// the smallest DID that fails, so the error does not depend on map order.
func (g *Group) checkSendableLocked(extra ...identity.DID) error {
	var bad identity.DID
	check := func(d identity.DID) {
		if p := g.peers[d]; p != nil && !p.canSend() && (bad.IsZero() || d.String() < bad.String()) {
			bad = d
		}
	}
	for d := range g.members {
		check(d)
	}
	for _, d := range extra {
		check(d)
	}
	if !bad.IsZero() {
		return errGroup("the pairwise session with " + bad.String() + " cannot send yet (contract-only responder before its first message)")
	}
	return nil
}

func (g *Group) rotateLocked() error {
	var ck [32]byte
	if _, err := io.ReadFull(g.cfg.Rand, ck[:]); err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	g.me = senderChain{epoch: g.me.epoch + 1, ck: ck}
	clear(g.sentTo)
	return nil
}

// Rotate replaces self's sender key with a fresh one and returns the
// control messages that send it to every connected member. Messages sent
// afterwards cannot be read with any earlier key.
func (g *Group) Rotate() ([]GroupOutbound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.joined || g.closed {
		return nil, errGroup("not a member of an open group")
	}
	if err := g.rotateLocked(); err != nil {
		return nil, err
	}
	return g.flushLocked()
}

type senderKeyJSON struct {
	Epoch     uint64 `json:"epoch"`
	ChainKey  string `json:"chain_key"`
	Iteration uint32 `json:"iteration"`
}

type controlJSON struct {
	Type      string            `json:"type"`
	GroupID   string            `json:"group_id"`
	Events    []json.RawMessage `json:"events,omitempty"`
	SenderKey *senderKeyJSON    `json:"sender_key,omitempty"`
}

// controlLocked builds a pairwise control message to d with events and,
// if withKey, self's current sender key.
func (g *Group) controlLocked(d identity.DID, events [][]byte, withKey bool) (GroupOutbound, error) {
	c := controlJSON{Type: groupCtlType, GroupID: g.id}
	for _, e := range events {
		c.Events = append(c.Events, e)
	}
	if withKey {
		c.SenderKey = &senderKeyJSON{Epoch: g.me.epoch, ChainKey: contracts.EncodeBase64URL(g.me.ck[:]), Iteration: g.me.n}
	}
	pt, err := contracts.Marshal(c)
	if err != nil {
		return GroupOutbound{}, err
	}
	defer clear(pt)
	wire, err := g.peers[d].Encrypt(pt)
	if err != nil {
		return GroupOutbound{}, err
	}
	if withKey {
		g.sentTo[d] = g.me.epoch
	}
	return GroupOutbound{To: d, Wire: wire}, nil
}

// flushLocked sends self's current sender key to every connected member
// that does not have it yet.
func (g *Group) flushLocked() ([]GroupOutbound, error) {
	if !g.joined || g.closed {
		return nil, nil
	}
	var out []GroupOutbound
	for d := range g.members {
		if e, ok := g.sentTo[d]; g.peers[d] == nil || !g.peers[d].canSend() || ok && e == g.me.epoch {
			continue
		}
		o, err := g.controlLocked(d, nil, true)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Handle processes a pairwise control message from member from: membership
// events (accepted only from the owner, chain-verified and schema-checked)
// and sender keys. It returns control messages to deliver in turn (self's
// sender key for new members, a rotated key after a removal).
//
// Handle is transactional: a message that does not decrypt, that decrypts
// but is malformed, or whose events fail part way changes nothing, the
// pairwise session with from included.
func (g *Group) Handle(from identity.DID, wire []byte) ([]GroupOutbound, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pair := g.peers[from]
	if pair == nil {
		return nil, errGroup("no pairwise session with the sender")
	}
	// A message that decrypts but is refused, or whose events fail part
	// way, changes nothing: the pairwise session and the group are put
	// back as they were.
	ps := pair.snapshot()
	pt, err := pair.Decrypt(wire)
	if err != nil {
		ps.wipe()
		return nil, err
	}
	defer clear(pt)
	var c controlJSON
	if err := contracts.UnmarshalStrict(pt, &c); err != nil || c.Type != groupCtlType || c.GroupID != g.id {
		pair.restore(&ps)
		return nil, errGroup("malformed control message")
	}
	if len(c.Events) == 0 {
		// A sender key alone changes only what concerns from: snapshot
		// that (O(1)), not the whole group. After a removal every member
		// receives one such message from every other, so this keeps a
		// membership change O(members) per member.
		ks := g.snapshotMemberLocked(from)
		out, err := g.handleKeyLocked(from, &c)
		if err != nil {
			g.restoreMemberLocked(&ks)
			pair.restore(&ps)
			return nil, err
		}
		ps.wipe()
		return out, nil
	}
	gs := g.snapshotLocked()
	out, err := g.handleLocked(from, &c)
	if err != nil {
		g.restoreLocked(&gs)
		pair.restore(&ps)
		return nil, err
	}
	gs.wipe()
	ps.wipe()
	return out, nil
}

// memberSnapshot is what a control message carrying only a sender key may
// change: from's receiving chains, pending key and sentTo entry.
type memberSnapshot struct {
	from            identity.DID
	recv            map[uint64]*recvChain // nil: from was not a member
	pending         *senderKeyJSON
	sentTo          uint64
	hasPend, hasSnt bool
}

func (g *Group) snapshotMemberLocked(from identity.DID) memberSnapshot {
	s := memberSnapshot{from: from}
	if m := g.members[from]; m != nil {
		s.recv = maps.Clone(m.recv)
	}
	s.pending, s.hasPend = g.pending[from]
	s.sentTo, s.hasSnt = g.sentTo[from]
	return s
}

func (g *Group) restoreMemberLocked(s *memberSnapshot) {
	if m := g.members[s.from]; m != nil && s.recv != nil {
		m.recv = s.recv
	}
	if s.hasPend {
		g.pending[s.from] = s.pending
	} else {
		delete(g.pending, s.from)
	}
	if s.hasSnt {
		g.sentTo[s.from] = s.sentTo
	} else {
		delete(g.sentTo, s.from)
	}
	*s = memberSnapshot{}
}

// handleKeyLocked handles a control message without events: it records the
// sender key and, since from's pairwise session may only now be able to
// send, gives from self's key if it lacks it.
func (g *Group) handleKeyLocked(from identity.DID, c *controlJSON) ([]GroupOutbound, error) {
	if err := g.takeKeyLocked(from, c); err != nil {
		return nil, err
	}
	if g.closed || !g.joined || g.members[from] == nil {
		return nil, nil
	}
	if e, ok := g.sentTo[from]; ok && e == g.me.epoch || !g.peers[from].canSend() {
		return nil, nil
	}
	o, err := g.controlLocked(from, nil, true)
	if err != nil {
		return nil, err
	}
	return []GroupOutbound{o}, nil
}

func (g *Group) handleLocked(from identity.DID, c *controlJSON) ([]GroupOutbound, error) {
	if len(c.Events) > 0 {
		if from != g.owner {
			return nil, errGroup("membership events come only from the owner")
		}
		for _, raw := range c.Events {
			if err := g.offerEventLocked(raw); err != nil {
				return nil, err
			}
		}
	}
	if err := g.takeKeyLocked(from, c); err != nil {
		return nil, err
	}
	if g.closed {
		return nil, nil
	}
	return g.flushLocked()
}

// takeKeyLocked records the sender key of a control message, if any.
func (g *Group) takeKeyLocked(from identity.DID, c *controlJSON) error {
	if c.SenderKey == nil {
		return nil
	}
	// Checked here, not only when applied: a pending key is applied with
	// its sender's member_added event, which a malformed key would
	// otherwise make fail (and, Handle being transactional, block) for
	// good.
	if ck, err := contracts.DecodeBase64URL(c.SenderKey.ChainKey); err != nil || len(ck) != 32 {
		return errGroup("malformed sender key")
	}
	if mm := g.members[from]; mm != nil {
		return mm.setKey(c.SenderKey)
	}
	g.pending[from] = c.SenderKey // applied when from's member_added arrives
	return nil
}

// groupSnapshot holds what handling a control message may change besides
// the sender's pairwise session. Event handling never changes peers, and
// never mutates a recvChain or a pending key in place (it replaces them),
// so shallow copies of those maps suffice.
type groupSnapshot struct {
	events         int
	head           string // chain head at events
	members        map[identity.DID]map[uint64]*recvChain
	joined, closed bool
	me             senderChain
	sentTo         map[identity.DID]uint64
	pending        map[identity.DID]*senderKeyJSON
	early          [][]byte
}

func (g *Group) snapshotLocked() groupSnapshot {
	s := groupSnapshot{
		events: len(g.events), head: g.chain.Head(), joined: g.joined, closed: g.closed, me: g.me,
		members: make(map[identity.DID]map[uint64]*recvChain, len(g.members)),
		sentTo:  maps.Clone(g.sentTo), pending: maps.Clone(g.pending), early: slices.Clone(g.early),
	}
	for d, m := range g.members {
		s.members[d] = maps.Clone(m.recv)
	}
	return s
}

// restoreLocked puts a snapshot back; s must not be used afterwards.
func (g *Group) restoreLocked(s *groupSnapshot) {
	if len(g.events) != s.events {
		for _, e := range g.events[s.events:] {
			delete(g.known, sha256.Sum256(e))
		}
		g.events = g.events[:s.events]
		if c, err := audit.ResumeChain(audit.GroupEventChain, s.head, s.events); err == nil {
			g.chain = c
		} else {
			// Unreachable (head and length come from a live chain); rebuild.
			g.chain = audit.NewChain(audit.GroupEventChain)
			for _, e := range g.events {
				_ = g.chain.Verify(json.RawMessage(e))
			}
		}
	}
	clear(g.members)
	for d, recv := range s.members {
		g.members[d] = &groupMember{recv: recv}
	}
	clear(g.me.ck[:])
	g.joined, g.closed, g.me = s.joined, s.closed, s.me
	g.sentTo, g.pending, g.early = s.sentTo, s.pending, s.early
	*s = groupSnapshot{}
}

// wipe zeroes a snapshot that is not restored.
func (s *groupSnapshot) wipe() {
	clear(s.me.ck[:])
	*s = groupSnapshot{}
}

// offerEventLocked checks an owner event and applies it, or keeps it until
// its predecessor arrives (pairwise messages may be reordered), then
// applies every kept event that has become next in the chain.
func (g *Group) offerEventLocked(raw []byte) error {
	if g.isKnownEventLocked(raw) {
		return nil // the full log re-sent to a member that has part of it
	}
	ev, err := g.checkEventLocked(raw)
	if err != nil {
		return err
	}
	if ev.PreviousDigest != g.chain.Link() {
		for _, e := range g.early {
			if string(e) == string(raw) {
				return nil
			}
		}
		if len(g.early) >= maxEarlyEvents {
			return errGroup("too many out-of-order membership events")
		}
		g.early = append(g.early, append([]byte(nil), raw...))
		return nil
	}
	if err := g.applyEventLocked(raw, ev); err != nil {
		return err
	}
	for progress := true; progress; {
		progress = false
		for i, e := range g.early {
			next, err := g.checkEventLocked(e)
			if err != nil || next.PreviousDigest != g.chain.Link() {
				continue
			}
			g.early = append(g.early[:i], g.early[i+1:]...)
			if err := g.applyEventLocked(e, next); err != nil {
				return err
			}
			progress = true
			break
		}
	}
	return nil
}

// checkEventLocked validates an event on its own: schema, group, actor and
// its own digest.
func (g *Group) checkEventLocked(raw []byte) (*groupEvent, error) {
	if err := contracts.Validate("a2a/group_event", raw); err != nil {
		return nil, err
	}
	var ev groupEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, errGroup("malformed event")
	}
	if ev.GroupID != g.id || ev.ActorID != g.owner.String() {
		return nil, errGroup("event from another group or actor")
	}
	d, err := audit.ChainDigest(raw, "event_digest")
	if err != nil || d != ev.EventDigest {
		return nil, contracts.New(contracts.CodeTGAHashChainBroken, "ratchet: group: event_digest does not match the event")
	}
	return &ev, nil
}

// applyEventLocked verifies that ev (raw) is the next event of the chain
// and applies it.
func (g *Group) applyEventLocked(raw []byte, ev *groupEvent) error {
	if (g.chain.Len() == 0) != (ev.EventType == EventGroupCreated) {
		return errGroup("group_created must be first, and only first")
	}
	if err := g.chain.Verify(json.RawMessage(raw)); err != nil {
		return err
	}
	g.addEventLocked(append([]byte(nil), raw...))
	var target identity.DID
	if ev.TargetID != "" {
		t, err := identity.ParseDID(ev.TargetID)
		if err != nil {
			return errGroup("bad target_id")
		}
		target = t
	}
	self := g.self.DID()
	switch ev.EventType {
	case EventGroupCreated:
		g.members[g.owner] = &groupMember{recv: make(map[uint64]*recvChain)}
		if k := g.pending[g.owner]; k != nil {
			delete(g.pending, g.owner)
			if err := g.members[g.owner].setKey(k); err != nil {
				return err
			}
		}
	case EventMemberAdded:
		if target == self {
			g.joined = true
			if g.me.epoch == 0 {
				return g.rotateLocked()
			}
			return nil
		}
		if g.members[target] == nil {
			m := &groupMember{recv: make(map[uint64]*recvChain)}
			g.members[target] = m
			if k := g.pending[target]; k != nil {
				delete(g.pending, target)
				if err := m.setKey(k); err != nil {
					return err
				}
			}
		}
	case EventMemberRemoved:
		if target == self {
			g.closed = true
			clear(g.members)
			return nil
		}
		delete(g.members, target)
		delete(g.sentTo, target)
		if g.joined {
			return g.rotateLocked()
		}
	case EventGroupClosed:
		g.closed = true
	}
	return nil
}

func (m *groupMember) setKey(k *senderKeyJSON) error {
	ck, err := contracts.DecodeBase64URL(k.ChainKey)
	if err != nil || len(ck) != 32 {
		return errGroup("malformed sender key")
	}
	if m.recv[k.Epoch] != nil {
		return nil // already have this epoch: never rewind a chain
	}
	m.recv[k.Epoch] = &recvChain{ck: [32]byte(ck), n: k.Iteration}
	for e := range m.recv {
		if e+1 < k.Epoch {
			delete(m.recv, e) // keep the current and the previous epoch
		}
	}
	return nil
}

// addEventLocked appends an event to the log and its hash to the known set.
func (g *Group) addEventLocked(raw []byte) {
	g.events = append(g.events, raw)
	g.known[sha256.Sum256(raw)] = struct{}{}
}

// isKnownEventLocked reports whether raw is in the log: one hash and one
// map lookup, so a member handling the whole log (joining) does O(events)
// work, not O(events²).
func (g *Group) isKnownEventLocked(raw []byte) bool {
	_, ok := g.known[sha256.Sum256(raw)]
	return ok
}

func kdfSender(ck *[32]byte) (mk, next [32]byte) {
	prk := hkdfExtract(ck[:], nil)
	return hkdfExpand1(&prk, infoGroupMessage), hkdfExpand1(&prk, infoGroupChain)
}

// Group message (library-private binary format):
//
//	'T' 'G' 0x01
//	u8 len(sender DID) ‖ sender DID
//	epoch u64 ‖ n u32 ‖ nonce (12) ‖ ciphertext ‖ tag
//	Ed25519 signature (64) by the sender's wallet over
//	  "talos.group.message.v1\0" ‖ group id ‖ everything above
//
// The AEAD associated data is the same prefix (domain ‖ group id ‖ header).

// Send encrypts plaintext once for every member under self's sender key and
// signs it. Broadcast the result to all members; they call Open.
func (g *Group) Send(plaintext []byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.joined || g.closed {
		return nil, errGroup("not a member of an open group")
	}
	if len(plaintext) > MaxPlaintextSize {
		return nil, errGroup("plaintext too large")
	}
	if g.me.n == maxCounter {
		return nil, errGroup("sender chain exhausted: call Rotate")
	}
	did := g.self.DID().String()
	out := make([]byte, 0, 3+1+len(did)+8+4+nonceSize+len(plaintext)+tagSize+64)
	out = append(out, 'T', 'G', 1, byte(len(did)))
	out = append(out, did...)
	out = binary.BigEndian.AppendUint64(out, g.me.epoch)
	out = binary.BigEndian.AppendUint32(out, g.me.n)
	var nonce [nonceSize]byte
	if _, err := io.ReadFull(g.cfg.Rand, nonce[:]); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	out = append(out, nonce[:]...)
	aad := g.aad(out)
	mk, next := kdfSender(&g.me.ck)
	aead, _ := chacha20poly1305.New(mk[:])
	out = aead.Seal(out, nonce[:], plaintext, aad)
	clear(mk[:])
	out = append(out, g.self.Sign(g.aad(out))...)
	g.me.ck = next
	g.me.n++
	return out, nil
}

func (g *Group) aad(header []byte) []byte {
	b := make([]byte, 0, len(groupMsgDomain)+len(g.id)+len(header))
	b = append(b, groupMsgDomain...)
	b = append(b, g.id...)
	return append(b, header...)
}

// Open verifies and decrypts a group message. It checks the sender's
// signature before anything else, accepts only current members, derives
// skipped keys (at most MaxSkip ahead) and commits chain state only after
// the AEAD opens. Errors: RATCHET_INVALID_HEADER for a malformed message,
// RATCHET_AUTH_FAILED for anything that does not verify or decrypt (an
// unknown sender or epoch included), RATCHET_MAX_SKIP_EXCEEDED.
func (g *Group) Open(msg []byte) (identity.DID, []byte, error) {
	sender, pt, err := g.open(msg)
	if err != nil {
		return identity.DID{}, nil, countFailure(err)
	}
	return sender, pt, nil
}

func (g *Group) open(msg []byte) (identity.DID, []byte, error) {
	var zero identity.DID
	if len(msg) < 4 || msg[0] != 'T' || msg[1] != 'G' || msg[2] != 1 || len(msg) > maxWireSize {
		return zero, nil, errHeader("malformed group message")
	}
	dl := int(msg[3])
	hdrEnd := 4 + dl + 8 + 4 + nonceSize
	if len(msg) < hdrEnd+tagSize+64 {
		return zero, nil, errHeader("malformed group message")
	}
	sender, err := identity.ParseDID(string(msg[4 : 4+dl]))
	if err != nil || sender.String() != string(msg[4:4+dl]) {
		return zero, nil, errHeader("malformed group message sender")
	}
	epoch := binary.BigEndian.Uint64(msg[4+dl:])
	n := binary.BigEndian.Uint32(msg[4+dl+8:])
	nonce := msg[4+dl+12 : hdrEnd]
	body, sig := msg[:len(msg)-64], msg[len(msg)-64:]

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.members[sender] == nil {
		return zero, nil, errAuth()
	}
	signed := g.aad(body)
	if !sender.Verify(signed, sig) {
		return zero, nil, errAuth()
	}
	rc := g.members[sender].recv[epoch]
	if rc == nil {
		return zero, nil, errAuth()
	}
	aad := signed[:len(groupMsgDomain)+len(g.id)+hdrEnd]
	ct := body[hdrEnd:]
	var mk [32]byte
	var staged map[uint32][32]byte
	ck, cur := rc.ck, rc.n
	fromSkipped := false
	switch {
	case n < cur:
		k, ok := rc.skipped[n]
		if !ok {
			return zero, nil, errAuth()
		}
		mk, fromSkipped = k, true
	case uint64(n) > uint64(cur)+MaxSkip:
		return zero, nil, errMaxSkip()
	default:
		for cur < n {
			k, next := kdfSender(&ck)
			if staged == nil {
				staged = make(map[uint32][32]byte)
			}
			staged[cur] = k
			ck = next
			cur++
		}
		var next [32]byte
		mk, next = kdfSender(&ck)
		ck = next
		cur++
	}
	aead, _ := chacha20poly1305.New(mk[:])
	pt, err := aead.Open(nil, nonce, ct, aad)
	clear(mk[:])
	if err != nil {
		return zero, nil, errAuth()
	}
	if fromSkipped {
		delete(rc.skipped, n)
		return sender, pt, nil
	}
	rc.ck, rc.n = ck, cur
	if len(staged) > 0 {
		if rc.skipped == nil {
			rc.skipped = make(map[uint32][32]byte)
		}
		for k, v := range staged {
			rc.skipped[k] = v
		}
		if len(rc.skipped) > DefaultMaxSkippedKeys {
			for k := range rc.skipped {
				if k+MaxSkip*2 < rc.n {
					delete(rc.skipped, k)
				}
			}
		}
	}
	return sender, pt, nil
}

// GroupChannel adapts a Group to the Channel interface over a broadcast
// Transport: Send encrypts once and broadcasts; Receive returns the next
// message that opens, dropping duplicates, forgeries and self's own echoes
// (reported to onReject when set, except echoes). Membership control
// messages travel separately (Group.Handle). It is safe for concurrent use.
type GroupChannel struct {
	g        *Group
	t        Transport
	onReject func(error)
}

var _ Channel = (*GroupChannel)(nil)

// NewGroupChannel returns a Channel for g over the broadcast transport t.
// onReject may be nil; it must not block.
func NewGroupChannel(g *Group, t Transport, onReject func(error)) (*GroupChannel, error) {
	if g == nil || t == nil {
		return nil, errGroup("NewGroupChannel needs a group and a transport")
	}
	return &GroupChannel{g: g, t: t, onReject: onReject}, nil
}

// Send implements Channel.
func (c *GroupChannel) Send(ctx context.Context, plaintext []byte) error {
	m, err := c.g.Send(plaintext)
	if err != nil {
		return err
	}
	return c.t.Send(ctx, m)
}

// Receive implements Channel.
func (c *GroupChannel) Receive(ctx context.Context) ([]byte, error) {
	_, pt, err := c.ReceiveFrom(ctx)
	return pt, err
}

// ReceiveFrom is Receive that also returns the sender, authenticated by
// its signature.
func (c *GroupChannel) ReceiveFrom(ctx context.Context) (identity.DID, []byte, error) {
	self := []byte(c.g.self.DID().String())
	for {
		m, err := c.t.Receive(ctx)
		if err != nil {
			return identity.DID{}, nil, err
		}
		if len(m) > 4 && int(m[3]) == len(self) && len(m) >= 4+len(self) && string(m[4:4+len(self)]) == string(self) {
			continue // our own broadcast
		}
		from, pt, err := c.g.Open(m)
		if err != nil {
			if c.onReject != nil {
				c.onReject(err)
			}
			continue
		}
		return from, pt, nil
	}
}
