package ratchet

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// plainSealer is a Sealer that does not encrypt, so that tests can compare
// states byte for byte (MarshalSealed is deterministic under it).
type plainSealer struct{}

func (plainSealer) Seal(pt, aad []byte) ([]byte, error) {
	return append(append(slices.Clone(aad), 0), pt...), nil
}

func (plainSealer) Open(sealed, aad []byte) ([]byte, error) {
	if !bytes.HasPrefix(sealed, append(slices.Clone(aad), 0)) {
		return nil, errors.New("plainSealer: wrong aad")
	}
	return slices.Clone(sealed[len(aad)+1:]), nil
}

// FuzzGroupHandle: Handle never panics on a peer's control message, its
// errors are typed, and a refused message (undecryptable, malformed, or
// with events that fail part way) leaves the group, pairwise session
// included, byte-for-byte unchanged. Mode 0 feeds the wire as is; mode 1
// encrypts the fuzzed plaintext with the owner's genuine pairwise session,
// so the control message parser and event handling are reached.
func FuzzGroupHandle(f *testing.F) {
	n, d := newGroupNet(f, 3)
	ownerW, memberW := n.wallets[d[0]], n.wallets[d[1]]
	seal := func(g *Group) []byte {
		b, err := g.MarshalSealed(plainSealer{}, nil)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	ownerSnap, memberSnap := seal(n.groups[d[0]]), seal(n.groups[d[1]])
	ownerPair := n.groups[d[0]].peers[d[1]].appendState(nil)
	restore := func(tb testing.TB, snap []byte, w any) *Group {
		var g *Group
		var err error
		if w == ownerW {
			g, err = UnmarshalGroupSealed(plainSealer{}, snap, nil, ownerW, GroupConfig{})
		} else {
			g, err = UnmarshalGroupSealed(plainSealer{}, snap, nil, memberW, GroupConfig{})
		}
		if err != nil {
			tb.Fatal(err)
		}
		return g
	}

	// Seeds: the owner's genuine control messages to the member (a removal
	// with its events and rotated key, a rotation), as wires and as
	// plaintexts, and the removal with a broken event appended.
	for _, act := range []func(*Group) ([]GroupOutbound, error){
		func(g *Group) ([]GroupOutbound, error) { return g.RemoveMember(d[2]) },
		func(g *Group) ([]GroupOutbound, error) { return g.Rotate() },
	} {
		outs, err := act(restore(f, ownerSnap, ownerW))
		if err != nil {
			f.Fatal(err)
		}
		for _, o := range outs {
			if o.To != d[1] {
				continue
			}
			f.Add(byte(0), o.Wire)
			m := restore(f, memberSnap, memberW)
			pt, err := m.peers[d[0]].Decrypt(o.Wire)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(byte(1), pt)
			var c controlJSON
			if err := json.Unmarshal(pt, &c); err != nil {
				f.Fatal(err)
			}
			if len(c.Events) > 0 {
				bad := bytes.Replace(c.Events[len(c.Events)-1], []byte(`"member_removed"`), []byte(`"member_added"`), 1)
				c.Events = append(c.Events, bad)
				b, err := contracts.Marshal(c)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(byte(1), b)
			}
		}
	}
	f.Add(byte(0), []byte("not a ratchet message"))
	f.Add(byte(1), []byte(`{"type":"talos.group.control.v1","group_id":"x"}`))

	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		g := restore(t, memberSnap, memberW)
		wire := data
		if mode%2 == 1 {
			s, err := parseState(ownerPair, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if wire, err = s.Encrypt(data); err != nil {
				t.Fatal(err)
			}
		}
		before := seal(g)
		_, err := g.Handle(d[0], wire)
		if err == nil {
			return
		}
		if contracts.CodeOf(err) == "" {
			t.Fatalf("untyped error %v", err)
		}
		if after := seal(g); !bytes.Equal(before, after) {
			t.Fatalf("refused control message (%v) changed the group:\nbefore %s\nafter  %s", err, before, after)
		}
	})
}

// FuzzSeqTrackerUnmarshal: a refused state leaves the tracker unchanged;
// an accepted one re-marshals to a state that is accepted again, encodes
// identically, and classifies frames the same way.
func FuzzSeqTrackerUnmarshal(f *testing.F) {
	seedT := NewSeqTracker()
	for i, p := range []struct{ sess, sender string }{{"s1", "a"}, {"s1", "b"}, {"s2", "a"}} {
		for seq := range uint64(3 + i) {
			seedT.Commit(&Frame{SessionID: p.sess, SenderID: p.sender, SenderSeq: seq * 2, FrameDigest: "d" + string(rune('0'+seq))})
		}
	}
	seed, err := seedT.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"session_id":"s","sender_id":"a","highest":3,"digests":{"1":"x","9":"y"}},{"session_id":"s","sender_id":"a","highest":1}]`))
	probe := &Frame{SessionID: "p", SenderID: "q", SenderSeq: 5, FrameDigest: "z"}
	f.Fuzz(func(t *testing.T, b []byte) {
		t1 := NewSeqTracker()
		t1.Commit(probe)
		prev, _ := t1.MarshalJSON()
		if err := t1.UnmarshalJSON(b); err != nil {
			if contracts.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			if now, _ := t1.MarshalJSON(); !bytes.Equal(now, prev) {
				t.Fatalf("refused state changed the tracker: %s", now)
			}
			return
		}
		m1, err := t1.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		t2 := NewSeqTracker()
		if err := t2.UnmarshalJSON(m1); err != nil {
			t.Fatalf("re-marshalled state refused: %v\n%s", err, m1)
		}
		if m2, _ := t2.MarshalJSON(); !bytes.Equal(m1, m2) {
			t.Fatalf("not a fixed point:\n%s\n%s", m1, m2)
		}
		var streams []seqStreamJSON
		if err := json.Unmarshal(m1, &streams); err != nil {
			t.Fatal(err)
		}
		for _, s := range streams {
			seqs := []uint64{0, s.Highest, s.Highest + 1, s.Highest + MaxSeqAhead + 1}
			for seq := range s.Digests {
				seqs = append(seqs, seq)
			}
			for _, seq := range seqs {
				for _, dig := range []string{s.Digests[seq], "other"} {
					fr := &Frame{SessionID: s.SessionID, SenderID: s.SenderID, SenderSeq: seq, FrameDigest: dig}
					d1, e1 := t1.Check(fr)
					d2, e2 := t2.Check(fr)
					if d1 != d2 || contracts.CodeOf(e1) != contracts.CodeOf(e2) {
						t.Fatalf("stream %q/%q seq %d: %v/%v vs %v/%v", s.SessionID, s.SenderID, seq, d1, e1, d2, e2)
					}
				}
			}
		}
	})
}

// A sender key that arrives before its sender's member_added is checked on
// arrival: a malformed one is refused and cannot later block the event.
func TestGroupHandleRejectsMalformedPendingKey(t *testing.T) {
	n := &groupNet{t: t, wallets: map[identity.DID]*identity.Wallet{}, groups: map[identity.DID]*Group{}}
	var d []identity.DID
	for _, name := range []string{"owner", "a", "b"} {
		w, err := identity.GenerateWallet(name)
		if err != nil {
			t.Fatal(err)
		}
		n.wallets[w.DID()] = w
		d = append(d, w.DID())
	}
	owner, err := CreateGroup(n.wallets[d[0]], GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n.groups[d[0]] = owner
	for _, m := range d[1:] {
		if n.groups[m], err = JoinGroup(owner.ID(), d[0], n.wallets[m], GroupConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	n.connectPair(d[0], d[1])
	n.connectPair(d[0], d[2])
	n.connectPair(d[1], d[2])

	// b, not yet a member in a's view, sends a a 16-byte chain key.
	b := n.groups[d[2]]
	pt, err := contracts.Marshal(controlJSON{Type: groupCtlType, GroupID: b.ID(),
		SenderKey: &senderKeyJSON{Epoch: 1, ChainKey: contracts.EncodeBase64URL(make([]byte, 16))}})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := b.peers[d[1]].Encrypt(pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.groups[d[1]].Handle(d[2], wire); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("malformed pending key: got %v", err)
	}

	for _, m := range d[1:] {
		out, err := owner.AddMember(m)
		if err != nil {
			t.Fatal(err)
		}
		n.deliver(d[0], out)
	}
	msg := n.send(d[2], "after")
	n.expectOpen(d[1], d[2], msg, "after")
}
