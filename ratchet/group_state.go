package ratchet

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

const sealDomainGroup = "talos.ratchet.group.v1\x00"

type groupStateJSON struct {
	Version int               `json:"v"`
	ID      string            `json:"id"`
	Owner   string            `json:"owner"`
	Self    string            `json:"self"`
	Joined  bool              `json:"joined"`
	Closed  bool              `json:"closed"`
	Events  []json.RawMessage `json:"events"`
	Peers   []peerJSON        `json:"peers"`
	Members []memberJSON      `json:"members"`
	Me      chainJSON         `json:"me"`
	SentTo  []sentJSON        `json:"sent_to"`
	Pending []pendingJSON     `json:"pending"`
	Early   []json.RawMessage `json:"early,omitempty"`
}

type peerJSON struct {
	DID   string `json:"did"`
	State string `json:"state"`
}

type memberJSON struct {
	DID    string      `json:"did"`
	Chains []chainJSON `json:"chains"`
}

type chainJSON struct {
	Epoch   uint64        `json:"epoch"`
	CK      string        `json:"ck"`
	N       uint32        `json:"n"`
	Skipped []skippedJSON `json:"skipped,omitempty"`
}

type skippedJSON struct {
	N  uint32 `json:"n"`
	MK string `json:"mk"`
}

type sentJSON struct {
	DID   string `json:"did"`
	Epoch uint64 `json:"epoch"`
}

type pendingJSON struct {
	DID string        `json:"did"`
	Key senderKeyJSON `json:"key"`
}

func sortedDIDs[V any](m map[identity.DID]V) []identity.DID {
	out := make([]identity.DID, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b identity.DID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// MarshalSealed serializes the group (its event log, pairwise sessions,
// sender keys and delivery bookkeeping; not the wallet) and seals it with
// sealer, bound to aad.
func (g *Group) MarshalSealed(sealer Sealer, aad []byte) ([]byte, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	g.mu.Lock()
	j := groupStateJSON{
		Version: 1, ID: g.id, Owner: g.owner.String(), Self: g.self.DID().String(),
		Joined: g.joined, Closed: g.closed,
		Me: chainJSON{Epoch: g.me.epoch, CK: contracts.EncodeBase64URL(g.me.ck[:]), N: g.me.n},
	}
	for _, e := range g.events {
		j.Events = append(j.Events, e)
	}
	for _, d := range sortedDIDs(g.peers) {
		j.Peers = append(j.Peers, peerJSON{DID: d.String(), State: contracts.EncodeBase64URL(g.peers[d].appendState(nil))})
	}
	for _, d := range sortedDIDs(g.members) {
		m := memberJSON{DID: d.String()}
		epochs := make([]uint64, 0, len(g.members[d].recv))
		for e := range g.members[d].recv {
			epochs = append(epochs, e)
		}
		slices.Sort(epochs)
		for _, e := range epochs {
			rc := g.members[d].recv[e]
			c := chainJSON{Epoch: e, CK: contracts.EncodeBase64URL(rc.ck[:]), N: rc.n}
			ns := make([]uint32, 0, len(rc.skipped))
			for n := range rc.skipped {
				ns = append(ns, n)
			}
			slices.Sort(ns)
			for _, n := range ns {
				mk := rc.skipped[n]
				c.Skipped = append(c.Skipped, skippedJSON{N: n, MK: contracts.EncodeBase64URL(mk[:])})
			}
			m.Chains = append(m.Chains, c)
		}
		j.Members = append(j.Members, m)
	}
	for _, d := range sortedDIDs(g.sentTo) {
		j.SentTo = append(j.SentTo, sentJSON{DID: d.String(), Epoch: g.sentTo[d]})
	}
	for _, d := range sortedDIDs(g.pending) {
		j.Pending = append(j.Pending, pendingJSON{DID: d.String(), Key: *g.pending[d]})
	}
	for _, e := range g.early {
		j.Early = append(j.Early, e)
	}
	g.mu.Unlock()
	pt, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return sealer.Seal(pt, append([]byte(sealDomainGroup), aad...))
}

// UnmarshalGroupSealed restores a group sealed by Group.MarshalSealed with
// the same aad, for the wallet self (which must be the one it was sealed
// for). The event log is verified again. Errors are TALOS_CRYPTO_ERROR for
// a blob that does not open or does not decode.
func UnmarshalGroupSealed(sealer Sealer, sealed, aad []byte, self *identity.Wallet, cfg GroupConfig) (*Group, error) {
	if sealer == nil || self == nil {
		return nil, errInput("nil Sealer or wallet")
	}
	pt, err := sealer.Open(sealed, append([]byte(sealDomainGroup), aad...))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: sealed group state does not open", err)
	}
	defer clear(pt)
	var j groupStateJSON
	if err := json.Unmarshal(pt, &j); err != nil || j.Version != 1 {
		return nil, errState("bad group encoding")
	}
	if j.Self != self.DID().String() {
		return nil, errState("group state belongs to another wallet")
	}
	owner, err := identity.ParseDID(j.Owner)
	if err != nil {
		return nil, errState("bad owner")
	}
	cfg = cfg.withDefaults()
	g := newGroup(j.ID, self, owner, cfg)
	g.joined, g.closed = j.Joined, j.Closed
	g.chain = audit.NewChain(audit.GroupEventChain)
	for _, e := range j.Events {
		if err := g.chain.Verify(e); err != nil {
			return nil, errState("event log does not verify")
		}
		g.addEventLocked(append([]byte(nil), e...))
	}
	for _, e := range j.Early {
		g.early = append(g.early, append([]byte(nil), e...))
	}
	key := func(s string) ([32]byte, error) {
		b, err := contracts.DecodeBase64URL(s)
		if err != nil || len(b) != 32 {
			return [32]byte{}, errState("bad key")
		}
		return [32]byte(b), nil
	}
	did := func(s string) (identity.DID, error) {
		d, err := identity.ParseDID(s)
		if err != nil {
			return d, errState("bad DID")
		}
		return d, nil
	}
	if g.me.ck, err = key(j.Me.CK); err != nil {
		return nil, err
	}
	g.me.epoch, g.me.n = j.Me.Epoch, j.Me.N
	for _, p := range j.Peers {
		d, err := did(p.DID)
		if err != nil {
			return nil, err
		}
		st, err := contracts.DecodeBase64URL(p.State)
		if err != nil {
			return nil, errState("bad peer state")
		}
		s, err := parseState(st, Config{Rand: cfg.Rand})
		clear(st)
		if err != nil {
			return nil, err
		}
		g.peers[d] = s
	}
	for _, m := range j.Members {
		d, err := did(m.DID)
		if err != nil {
			return nil, err
		}
		gm := &groupMember{recv: make(map[uint64]*recvChain)}
		for _, c := range m.Chains {
			rc := &recvChain{n: c.N}
			if rc.ck, err = key(c.CK); err != nil {
				return nil, err
			}
			for _, sk := range c.Skipped {
				if rc.skipped == nil {
					rc.skipped = make(map[uint32][32]byte)
				}
				if rc.skipped[sk.N], err = key(sk.MK); err != nil {
					return nil, err
				}
			}
			gm.recv[c.Epoch] = rc
		}
		g.members[d] = gm
	}
	for _, s := range j.SentTo {
		d, err := did(s.DID)
		if err != nil {
			return nil, err
		}
		g.sentTo[d] = s.Epoch
	}
	for _, p := range j.Pending {
		d, err := did(p.DID)
		if err != nil {
			return nil, err
		}
		k := p.Key
		g.pending[d] = &k
	}
	return g, nil
}
