package ratchet

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

func sessionSecrets(s *Session) [][]byte {
	st := &s.st
	keys := [][]byte{st.dhs.priv[:], st.rk[:], st.cks[:], st.ckr[:]}
	for i := range s.skipped {
		keys = append(keys, s.skipped[i].mk[:])
	}
	return keys
}

func nonZero(keys [][]byte) [][]byte {
	var out [][]byte
	for _, k := range keys {
		if !bytes.Equal(k, make([]byte, len(k))) {
			out = append(out, k)
		}
	}
	return out
}

func TestFormatRedactsSecrets(t *testing.T) {
	alice, bob := newPair(t, Config{})
	// Give both sides a receiving chain and bob skipped-message keys.
	w1 := mustEncrypt(t, alice, "one")
	mustEncrypt(t, alice, "two")
	w3 := mustEncrypt(t, alice, "three")
	mustDecrypt(t, bob, w1, "one")
	mustDecrypt(t, bob, w3, "three")
	mustDecrypt(t, alice, mustEncrypt(t, bob, "back"), "back")
	if bob.SkippedKeys() == 0 {
		t.Fatal("setup: bob has no skipped keys")
	}

	net, dids := newGroupNet(t, 3)
	owner := net.groups[dids[0]]
	member := net.groups[dids[1]]
	// A message from the owner leaves a skipped key at member 2 once a
	// later one is opened first.
	first := net.send(dids[0], "first")
	second := net.send(dids[0], "second")
	net.expectOpen(dids[1], dids[0], second, "second")
	_ = first

	groupSecrets := func(g *Group) [][]byte {
		keys := [][]byte{g.me.ck[:]}
		for _, m := range g.members {
			for _, c := range m.recv {
				keys = append(keys, c.ck[:])
				for _, mk := range c.skipped {
					keys = append(keys, mk[:])
				}
			}
		}
		for _, s := range g.peers {
			keys = append(keys, sessionSecrets(s)...)
		}
		return keys
	}

	w, err := identity.GenerateWallet("carol")
	if err != nil {
		t.Fatal(err)
	}
	pk, err := GeneratePrekey(w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	chAlice, _ := newPair(t, Config{})
	ta, tb := NewMemPipe()
	sc, err := NewChannel(chAlice, ta, ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := NewGroupChannel(owner, tb, nil)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		v       any
		secrets [][]byte
	}{
		{"Session/initiator", alice, sessionSecrets(alice)},
		{"Session/responder", bob, sessionSecrets(bob)},
		{"Prekey", pk, [][]byte{pk.priv[:]}},
		{"Group/owner", owner, groupSecrets(owner)},
		{"Group/member", member, groupSecrets(member)},
		{"SessionChannel", sc, sessionSecrets(chAlice)},
		{"GroupChannel", gc, groupSecrets(owner)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secrets := nonZero(tc.secrets)
			if len(secrets) == 0 {
				t.Fatalf("setup: only %d non-zero secrets", len(secrets))
			}
			for how, text := range testenv.Renderings(tc.v, true) {
				for _, k := range secrets {
					for _, form := range testenv.LeakForms(k) {
						if strings.Contains(text, form) {
							t.Fatalf("%s output contains key material %q:\n%s", how, form, text)
						}
					}
				}
			}
		})
	}

	// The self-check: the same detector finds the keys in an unprotected
	// copy of the state, so the test above can fail.
	for _, verb := range testenv.FormatVerbs[:6] {
		text := fmt.Sprintf(verb, alice.st)
		if verb == "%s" || verb == "%q" {
			continue // byte arrays print as text: checked by the raw form
		}
		found := false
		for _, form := range testenv.LeakForms(alice.st.rk[:]) {
			found = found || strings.Contains(text, form)
		}
		if !found {
			t.Errorf("detector misses the root key in %s output %q", verb, text)
		}
	}
}

func TestFormatNil(t *testing.T) {
	var s *Session
	var p *Prekey
	var g *Group
	for _, v := range []fmt.Stringer{s, p, g} {
		if got := fmt.Sprintf("%v %d %+v", v, v, v); !strings.Contains(got, "(nil)") {
			t.Errorf("nil value prints %q", got)
		}
	}
}
