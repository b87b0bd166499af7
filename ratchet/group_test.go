package ratchet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

type groupNet struct {
	t         testing.TB
	wallets   map[identity.DID]*identity.Wallet
	groups    map[identity.DID]*Group
	deliverFn func(from identity.DID, outs []GroupOutbound) // nil: deliver at once, depth first
}

// connectPair creates authenticated pairwise sessions between a and b (so
// either side may send first) and registers them with both groups.
func (n *groupNet) connectPair(a, b identity.DID) {
	t := n.t
	p, err := GeneratePrekey(n.wallets[b].Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sa, proof, err := InitiateAuthenticated(p.Bundle(), n.wallets[a].Signer(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := AcceptAuthenticated(p, proof, a, Config{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := n.groups[a].Connect(b, sa)
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(a, out)
	out, err = n.groups[b].Connect(a, sb)
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(b, out)
}

func (n *groupNet) deliver(from identity.DID, outs []GroupOutbound) {
	if n.deliverFn != nil {
		n.deliverFn(from, outs)
		return
	}
	for _, o := range outs {
		g := n.groups[o.To]
		if g == nil {
			continue
		}
		more, err := g.Handle(from, o.Wire)
		if err != nil {
			n.t.Fatalf("Handle at %s from %s: %v", o.To, from, err)
		}
		n.deliver(o.To, more)
	}
}

func newGroupNet(t testing.TB, size int) (*groupNet, []identity.DID) {
	return newGroupNetPairs(t, size, func(int, int) bool { return true })
}

// newGroupNetPairs builds a group of size members in which the pairs that
// connect(i, j) approves have pairwise sessions.
func newGroupNetPairs(t testing.TB, size int, connect func(i, j int) bool) (*groupNet, []identity.DID) {
	n := &groupNet{t: t, wallets: map[identity.DID]*identity.Wallet{}, groups: map[identity.DID]*Group{}}
	var dids []identity.DID
	for i := range size {
		w, err := identity.GenerateWallet(fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		n.wallets[w.DID()] = w
		dids = append(dids, w.DID())
	}
	owner, err := CreateGroup(n.wallets[dids[0]], GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n.groups[dids[0]] = owner
	for _, d := range dids[1:] {
		g, err := JoinGroup(owner.ID(), dids[0], n.wallets[d], GroupConfig{})
		if err != nil {
			t.Fatal(err)
		}
		n.groups[d] = g
	}
	for i := range dids {
		for j := i + 1; j < len(dids); j++ {
			if connect(i, j) {
				n.connectPair(dids[i], dids[j])
			}
		}
	}
	for _, d := range dids[1:] {
		out, err := owner.AddMember(d)
		if err != nil {
			t.Fatal(err)
		}
		n.deliver(dids[0], out)
	}
	return n, dids
}

func (n *groupNet) send(from identity.DID, msg string) []byte {
	b, err := n.groups[from].Send([]byte(msg))
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

func (n *groupNet) expectOpen(at, from identity.DID, b []byte, want string) {
	n.t.Helper()
	sender, pt, err := n.groups[at].Open(b)
	if err != nil || sender != from || string(pt) != want {
		n.t.Fatalf("Open at %s: %s %q %v; want %q from %s", at, sender, pt, err, want, from)
	}
}

func TestGroupMessagingAndRemoval(t *testing.T) {
	n, d := newGroupNet(t, 4)
	owner := n.groups[d[0]]
	for _, m := range d {
		if got := len(n.groups[m].Members()); got != 3 {
			t.Fatalf("%s sees %d members", m, got)
		}
	}
	for _, from := range d {
		msg := n.send(from, "hello from "+from.String())
		for _, at := range d {
			if at != from {
				n.expectOpen(at, from, msg, "hello from "+from.String())
			}
		}
	}
	// Out of order and duplicates.
	m1, m2, m3 := n.send(d[1], "1"), n.send(d[1], "2"), n.send(d[1], "3")
	n.expectOpen(d[2], d[1], m3, "3")
	n.expectOpen(d[2], d[1], m1, "1")
	n.expectOpen(d[2], d[1], m2, "2")
	if _, _, err := n.groups[d[2]].Open(m1); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("duplicate: %v", err)
	}
	// A member cannot forge another: d[2] knows d[1]'s chain key but cannot sign as d[1].
	forged := forgeAs(t, n.groups[d[2]], d[1], n.wallets[d[2]], "I am d1")
	if _, _, err := n.groups[d[3]].Open(forged); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("forged by a member: %v", err)
	}
	tampered := append([]byte(nil), m3...)
	tampered[len(tampered)-70] ^= 1
	if _, _, err := n.groups[d[3]].Open(tampered); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("tampered: %v", err)
	}

	// Remove d[3]; keep a copy of everything it knew.
	victim := n.groups[d[3]]
	snapshot := map[identity.DID]map[uint64]recvChain{}
	for m, gm := range victim.members {
		snapshot[m] = map[uint64]recvChain{}
		for e, rc := range gm.recv {
			snapshot[m][e] = *rc
		}
	}
	out, err := owner.RemoveMember(d[3])
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(d[0], out)
	if !victim.closed {
		t.Fatal("removed member did not learn of its removal")
	}
	for _, from := range d[:3] {
		msg := n.send(from, "after removal")
		for _, at := range d[:3] {
			if at != from {
				n.expectOpen(at, from, msg, "after removal")
			}
		}
		if _, _, err := victim.Open(msg); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("removed member opened a later message: %v", err)
		}
		// Even a removed member that ignores the removal and kept its keys
		// cannot read it: every sender rotated to a key it never received.
		ghost := newGroup(victim.id, n.wallets[d[3]], d[0], GroupConfig{}.withDefaults())
		for m, chains := range snapshot {
			ghost.members[m] = &groupMember{recv: map[uint64]*recvChain{}}
			for e, rc := range chains {
				c := rc
				ghost.members[m].recv[e] = &c
			}
		}
		if _, _, err := ghost.Open(msg); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("removed member's old keys opened a later message: %v", err)
		}
	}
	// Everyone holds the same verified, schema-valid event chain.
	events := owner.Events()
	if len(events) != 5 {
		t.Fatalf("%d events", len(events))
	}
	raws := make([]json.RawMessage, len(events))
	for i, e := range events {
		raws[i] = e
		if err := contracts.Validate("a2a/group_event", e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.VerifyChain(audit.GroupEventChain, raws); err != nil {
		t.Fatal(err)
	}
	for _, m := range d[1:3] {
		got := n.groups[m].Events()
		if len(got) != len(events) || string(got[4]) != string(events[4]) {
			t.Fatalf("%s has a different event log", m)
		}
	}
	// A voluntary rotation: later messages use the new key everywhere.
	out, err = n.groups[d[2]].Rotate()
	if err != nil || len(out) != 2 {
		t.Fatalf("Rotate: %d messages, %v", len(out), err)
	}
	n.deliver(d[2], out)
	rotated := n.send(d[2], "rotated")
	n.expectOpen(d[0], d[2], rotated, "rotated")
	n.expectOpen(d[1], d[2], rotated, "rotated")
	if _, err := n.groups[d[1]].AddMember(d[3]); err == nil {
		t.Fatal("a non-owner added a member")
	}
}

// forgeAs builds a message claiming to be from victim, encrypted with
// victim's chain key as g (another member) knows it, signed by signer.
func forgeAs(t *testing.T, g *Group, victim identity.DID, signer *identity.Wallet, msg string) []byte {
	var epoch uint64
	var rc *recvChain
	for e, c := range g.members[victim].recv {
		if rc == nil || e > epoch {
			epoch, rc = e, c
		}
	}
	fake := newGroup(g.id, signer, g.owner, GroupConfig{}.withDefaults())
	fake.joined = true
	fake.me = senderChain{epoch: epoch, ck: rc.ck, n: rc.n}
	b, err := fake.Send([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	// Replace the sender DID with the victim's (same length for did:key).
	did := []byte(victim.String())
	copy(b[4:4+len(did)], did)
	return b
}

func TestGroupRejectsEventsFromNonOwner(t *testing.T) {
	n, d := newGroupNet(t, 3)
	g1 := n.groups[d[1]]
	// d[1] replays the owner's genuine events to d[2] over their pairwise session.
	c := controlJSON{Type: groupCtlType, GroupID: g1.id}
	for _, e := range g1.Events() {
		c.Events = append(c.Events, e)
	}
	pt, _ := contracts.Marshal(c)
	wire, err := g1.peers[d[2]].Encrypt(pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.groups[d[2]].Handle(d[1], wire); err == nil {
		t.Fatal("membership events accepted from a non-owner")
	}
	// A tampered event from the owner breaks the chain.
	owner := n.groups[d[0]]
	ev := owner.Events()
	bad := []byte(string(ev[1]))
	bad = []byte(strings.Replace(string(bad), `"member_added"`, `"member_removed"`, 1))
	c = controlJSON{Type: groupCtlType, GroupID: owner.id, Events: []json.RawMessage{bad}}
	pt, _ = contracts.Marshal(c)
	fresh, _ := JoinGroup(owner.id, d[0], n.wallets[d[2]], GroupConfig{})
	p, _ := GeneratePrekey(n.wallets[d[2]].Signer(), nil)
	so, proof, _ := InitiateAuthenticated(p.Bundle(), n.wallets[d[0]].Signer(), Config{})
	sf, _ := AcceptAuthenticated(p, proof, d[0], Config{})
	fresh.Connect(d[0], sf)
	wire, _ = so.Encrypt(pt)
	if _, err := fresh.Handle(d[0], wire); err == nil {
		t.Fatal("event out of chain order accepted")
	}
}

func TestGroupSealedRoundTrip(t *testing.T) {
	n, d := newGroupNet(t, 3)
	kr := identity.NewKeyring()
	kr.Add("k", make([]byte, 32))
	kr.SetPrimary("k")
	m1 := n.send(d[0], "before")
	m2 := n.send(d[0], "skipped") // d[1] receives it after the restore
	m3 := n.send(d[0], "after")
	n.expectOpen(d[1], d[0], m1, "before")
	n.expectOpen(d[1], d[0], m3, "after")
	sealed, err := n.groups[d[1]].MarshalSealed(kr, []byte("g"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalGroupSealed(kr, sealed, []byte("g"), n.wallets[d[2]], GroupConfig{}); err == nil {
		t.Fatal("restored for another wallet")
	}
	if _, err := UnmarshalGroupSealed(kr, sealed, []byte("other"), n.wallets[d[1]], GroupConfig{}); err == nil {
		t.Fatal("restored with another aad")
	}
	g, err := UnmarshalGroupSealed(kr, sealed, []byte("g"), n.wallets[d[1]], GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := g.MarshalSealed(kr, []byte("g"))
	pt1, _ := kr.Open(sealed, append([]byte(sealDomainGroup), 'g'))
	pt2, _ := kr.Open(again, append([]byte(sealDomainGroup), 'g'))
	if string(pt1) != string(pt2) {
		t.Fatal("group state does not round-trip")
	}
	n.groups[d[1]] = g
	n.expectOpen(d[1], d[0], m2, "skipped")
	// The restored member keeps receiving, sending and handling membership.
	n.expectOpen(d[1], d[0], n.send(d[0], "next"), "next")
	n.expectOpen(d[2], d[1], n.send(d[1], "from restored"), "from restored")
	out, err := n.groups[d[0]].RemoveMember(d[2])
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(d[0], out)
	n.expectOpen(d[0], d[1], n.send(d[1], "rotated"), "rotated")
	if got := g.Members(); len(got) != 1 || got[0] != d[0] {
		t.Fatalf("members after removal: %v", got)
	}
}

func TestGroupRefusesUnsendableSession(t *testing.T) {
	ow, _ := identity.GenerateWallet("owner")
	mw, _ := identity.GenerateWallet("member")
	owner, _ := CreateGroup(ow, GroupConfig{})
	// Contract-only setup with the owner as responder: it cannot send yet.
	p, _ := GeneratePrekey(ow.Signer(), nil)
	toOwner, _ := Initiate(p.Bundle(), Config{})
	ownerSide, _ := Accept(p, Config{})
	owner.Connect(mw.DID(), ownerSide)
	if _, err := owner.AddMember(mw.DID()); err == nil {
		t.Fatal("AddMember over a session that cannot send")
	}
	if len(owner.Events()) != 1 || len(owner.Members()) != 0 {
		t.Fatal("a refused AddMember changed the group")
	}
	// Once the member has sent a message on the pairwise session, it works.
	w, _ := toOwner.Encrypt([]byte("hi"))
	if _, err := ownerSide.Decrypt(w); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.AddMember(mw.DID()); err != nil {
		t.Fatal(err)
	}
}

// TestGroupShuffledControlDelivery delivers every control message in a
// random order (the pairwise sessions and the group must cope with keys
// before events and events before their predecessors).
func TestGroupShuffledControlDelivery(t *testing.T) {
	type item struct {
		from identity.DID
		out  GroupOutbound
	}
	r := mrand.New(mrand.NewPCG(9, 9))
	n := &groupNet{t: t, wallets: map[identity.DID]*identity.Wallet{}, groups: map[identity.DID]*Group{}}
	var queue []item
	n.deliverFn = func(from identity.DID, outs []GroupOutbound) {
		for _, o := range outs {
			queue = append(queue, item{from, o})
		}
	}
	drain := func() {
		for len(queue) > 0 {
			i := r.IntN(len(queue))
			it := queue[i]
			queue = append(queue[:i], queue[i+1:]...)
			more, err := n.groups[it.out.To].Handle(it.from, it.out.Wire)
			if err != nil {
				t.Fatalf("Handle at %s: %v", it.out.To, err)
			}
			n.deliverFn(it.out.To, more)
		}
	}
	var d []identity.DID
	for i := range 5 {
		w, _ := identity.GenerateWallet(fmt.Sprint("m", i))
		n.wallets[w.DID()] = w
		d = append(d, w.DID())
	}
	owner, _ := CreateGroup(n.wallets[d[0]], GroupConfig{})
	n.groups[d[0]] = owner
	for _, m := range d[1:] {
		n.groups[m], _ = JoinGroup(owner.ID(), d[0], n.wallets[m], GroupConfig{})
	}
	for i := range d {
		for j := i + 1; j < len(d); j++ {
			n.connectPair(d[i], d[j])
		}
	}
	for _, m := range d[1:] {
		out, err := owner.AddMember(m)
		if err != nil {
			t.Fatal(err)
		}
		n.deliverFn(d[0], out)
	}
	drain()
	for _, from := range d {
		msg := n.send(from, "hi")
		for _, at := range d {
			if at != from {
				n.expectOpen(at, from, msg, "hi")
			}
		}
	}
	out, err := owner.RemoveMember(d[4])
	if err != nil {
		t.Fatal(err)
	}
	n.deliverFn(d[0], out)
	drain()
	for _, from := range d[:4] {
		msg := n.send(from, "after")
		for _, at := range d[:4] {
			if at != from {
				n.expectOpen(at, from, msg, "after")
			}
		}
		if _, _, err := n.groups[d[4]].Open(msg); err == nil {
			t.Fatal("removed member opened a later message")
		}
	}
	for _, m := range d[1:4] {
		if len(n.groups[m].Events()) != len(owner.Events()) {
			t.Fatalf("%s has %d events, owner %d", m, len(n.groups[m].Events()), len(owner.Events()))
		}
	}
}

// hub is a broadcast medium for tests: every message reaches every other
// endpoint, duplicated once.
type hub struct {
	mu  sync.Mutex
	eps []*MemTransport // the hub's ends
}

func (h *hub) endpoint() *MemTransport {
	ours, theirs := NewMemPipe()
	h.mu.Lock()
	h.eps = append(h.eps, ours)
	h.mu.Unlock()
	go func() {
		for {
			m, err := ours.Receive(context.Background())
			if err != nil {
				return
			}
			h.mu.Lock()
			for _, e := range h.eps {
				if e != ours {
					e.Send(context.Background(), m)
					e.Send(context.Background(), m) // duplicate
				}
			}
			h.mu.Unlock()
		}
	}()
	return theirs
}

func TestGroupChannel(t *testing.T) {
	n, d := newGroupNet(t, 3)
	h := &hub{}
	var rejects atomic.Int32
	chans := map[identity.DID]*GroupChannel{}
	for _, m := range d {
		c, err := NewGroupChannel(n.groups[m], h.endpoint(), func(error) { rejects.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		chans[m] = c
	}
	defer func() {
		for _, e := range h.eps {
			e.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i, from := range d {
		if err := chans[from].Send(ctx, []byte(fmt.Sprint("msg ", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range d {
		got := map[string]identity.DID{}
		for range 2 {
			from, pt, err := chans[at].ReceiveFrom(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got[string(pt)] = from
		}
		for i, from := range d {
			if from == at {
				continue
			}
			if got[fmt.Sprint("msg ", i)] != from {
				t.Fatalf("%s: got %v", at, got)
			}
		}
	}
	// The duplicates were dropped (as authentication failures).
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := chans[d[0]].Receive(short); err == nil {
		t.Fatal("a duplicate was delivered")
	}
	if rejects.Load() == 0 {
		t.Fatal("duplicates were not reported")
	}
}

// TestGroupMembershipAtScale: in a group of 64 members where most members
// have pairwise sessions only with the owner and two others, a removal
// reaches everyone: every remaining member rotates, the removed member can
// no longer read, the rest read each other; then a new member joins by
// handling the whole event log (one hash lookup per known event).
func TestGroupMembershipAtScale(t *testing.T) {
	const size = 64
	n, d := newGroupNetPairs(t, size, func(i, j int) bool { return i <= 2 || j <= 2 })
	owner := n.groups[d[0]]
	gone := d[size-1]
	epochs := map[identity.DID]uint64{}
	for _, m := range d[:size-1] {
		epochs[m] = n.groups[m].me.epoch
	}
	out, err := owner.RemoveMember(gone)
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(d[0], out)
	for _, m := range d[:size-1] {
		g := n.groups[m]
		if g.me.epoch != epochs[m]+1 {
			t.Fatalf("%s did not rotate exactly once: epoch %d -> %d", m, epochs[m], g.me.epoch)
		}
		if len(g.Members()) != size-2 {
			t.Fatalf("%s sees %d members", m, len(g.Members()))
		}
	}
	msg := n.send(d[1], "after removal")
	for _, at := range d[:size-1] {
		if at != d[1] {
			n.expectOpen(at, d[1], msg, "after removal")
		}
	}
	if _, _, err := n.groups[gone].Open(msg); err == nil {
		t.Fatal("removed member read a message sent after its removal")
	}
	// A newcomer receives and checks the whole log.
	w, _ := identity.GenerateWallet("newcomer")
	n.wallets[w.DID()] = w
	g, err := JoinGroup(owner.ID(), d[0], w, GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n.groups[w.DID()] = g
	n.connectPair(d[0], w.DID())
	n.connectPair(d[1], w.DID())
	out, err = owner.AddMember(w.DID())
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(d[0], out)
	if len(g.Events()) != len(owner.Events()) || len(g.Members()) != size-1 {
		t.Fatalf("newcomer: %d events (owner %d), %d members", len(g.Events()), len(owner.Events()), len(g.Members()))
	}
	n.expectOpen(w.DID(), d[1], n.send(d[1], "welcome"), "welcome")
	// Re-sending the log changes nothing (every event is known).
	before := len(g.Events())
	o, err := owner.controlLocked(w.DID(), owner.events, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Handle(d[0], o.Wire); err != nil || len(g.Events()) != before {
		t.Fatalf("re-sent log: %v, %d events", err, len(g.Events()))
	}
}
