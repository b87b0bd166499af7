package ratchet

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/talosgo/talos/identity"
)

// BenchmarkGroupScale measures group messaging at 100 and 1,000 members
// (BenchmarkGroup50 has the 50-member comparison with pairwise fan-out):
//
//   - send: one member's Send (one encryption, one signature);
//   - deliver: Send plus Open at every other member, beside
//     ed25519_verify_xN, the bare verifications the receivers cannot avoid;
//   - add_remove: the owner adds a member and removes it again, with every
//     control message delivered and handled (the removal makes every member
//     rotate its sender key and send it to its connected peers): the whole
//     group's work for two membership changes.
//
// As in BenchmarkGroup50, the owner and two senders have pairwise sessions
// with everyone; the other members only with those three.
func BenchmarkGroupScale(b *testing.B) {
	for _, members := range []int{100, 1000} {
		b.Run(fmt.Sprint(members), func(b *testing.B) {
			msg := make([]byte, 256)
			n, d := newGroupNetPairs(b, members+1, func(i, j int) bool { return i <= 2 || j <= 2 })
			b.Run("send", func(b *testing.B) {
				sender := n.groups[d[1]]
				b.ReportAllocs()
				for b.Loop() {
					if _, err := sender.Send(msg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("deliver", func(b *testing.B) {
				sender := n.groups[d[2]]
				b.ReportAllocs()
				for b.Loop() {
					m, err := sender.Send(msg)
					if err != nil {
						b.Fatal(err)
					}
					for _, at := range d {
						if at == d[2] {
							continue
						}
						if _, _, err := n.groups[at].Open(m); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			b.Run(fmt.Sprintf("ed25519_verify_x%d", members), func(b *testing.B) {
				pub, priv, _ := ed25519.GenerateKey(nil)
				sig := ed25519.Sign(priv, msg)
				b.ReportAllocs()
				for b.Loop() {
					for range members {
						if !ed25519.Verify(pub, msg, sig) {
							b.Fatal("verify")
						}
					}
				}
			})
			b.Run("add_remove", func(b *testing.B) {
				owner := n.groups[d[0]]
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					w, err := identity.GenerateWallet("extra")
					if err != nil {
						b.Fatal(err)
					}
					n.wallets[w.DID()] = w
					g, err := JoinGroup(owner.ID(), d[0], w, GroupConfig{})
					if err != nil {
						b.Fatal(err)
					}
					n.groups[w.DID()] = g
					n.connectPair(d[0], w.DID())
					b.StartTimer()
					out, err := owner.AddMember(w.DID())
					if err != nil {
						b.Fatal(err)
					}
					n.deliver(d[0], out)
					out, err = owner.RemoveMember(w.DID())
					if err != nil {
						b.Fatal(err)
					}
					n.deliver(d[0], out)
					b.StopTimer()
					delete(n.groups, w.DID())
					b.StartTimer()
				}
			})
		})
	}
}
