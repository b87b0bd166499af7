package ratchet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// newHEPair returns a header-encrypted session pair over the shared hybrid
// prekey.
func newHEPair(t testing.TB) (alice, bob *Session) {
	t.Helper()
	p := sharedHybridPrekey(t)
	alice, setup, err := InitiateHybrid(p.Bundle(), Config{HeaderEncryption: true})
	if err != nil {
		t.Fatal(err)
	}
	if !setup.HeaderEncryption || !alice.HeaderEncrypted() {
		t.Fatal("header encryption not negotiated")
	}
	raw, _ := json.Marshal(setup)
	if !strings.Contains(string(raw), `"header_encryption":true`) {
		t.Fatalf("setup JSON %s", raw)
	}
	parsed, err := ParseHybridSetup(raw)
	if err != nil {
		t.Fatal(err)
	}
	bob, err = AcceptHybrid(p, parsed, Config{HeaderEncryption: true})
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestHeaderEncryptionConversation(t *testing.T) {
	alice, bob := newHEPair(t)
	// The responder can send first.
	mustDecrypt(t, alice, mustEncrypt(t, bob, "bob first"), "bob first")
	var late []string
	var lateW [][]byte
	for round := range 12 {
		for i := range round%3 + 1 {
			msg := fmt.Sprint("a", round, i)
			w := mustEncrypt(t, alice, msg)
			if i == 0 && round%2 == 0 {
				late, lateW = append(late, msg), append(lateW, w)
				continue
			}
			mustDecrypt(t, bob, w, msg)
		}
		mustDecrypt(t, alice, mustEncrypt(t, bob, fmt.Sprint("b", round)), fmt.Sprint("b", round))
	}
	// Late messages of earlier chains still open (within the kept chains),
	// once each; older chains' keys are gone.
	for i, w := range lateW {
		_, err := bob.Decrypt(w)
		if i < len(lateW)-MaxReceivingChains {
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("late %d beyond the kept chains: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("late %s: %v", late[i], err)
		}
		if _, err := bob.Decrypt(w); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("replay of late %d: %v", i, err)
		}
	}
	// Replays of current-chain messages fail.
	w := mustEncrypt(t, alice, "once")
	mustDecrypt(t, bob, w, "once")
	if _, err := bob.Decrypt(w); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("replay: %v", err)
	}
}

// TestHeaderEncryptionHidesHeader: what a relay sees (the envelope, or the
// A2A frame) carries neither the ratchet key nor the counters.
func TestHeaderEncryptionHidesHeader(t *testing.T) {
	heSID := contracts.NewUUIDv7()
	alice, bob := newHEPair(t)
	var last []byte
	for i := range 3 {
		last = mustEncrypt(t, alice, "m"+strconv.Itoa(i))
	}
	if _, err := ParseMessage(last); err == nil {
		t.Fatal("a header-encrypted envelope parses as a contract envelope")
	}
	pub := contracts.EncodeBase64URL(alice.st.dhs.pub[:])
	if bytes.Contains(last, []byte(pub)) || bytes.Contains(last, []byte(`"n":`)) || bytes.Contains(last, alice.st.dhs.pub[:]) {
		t.Fatalf("envelope leaks the header: %s", last)
	}
	f, err := alice.EncryptFrame(heSID, "alice", 7, []byte("framed"), time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := contracts.DecodeBase64URL(f.HeaderB64U)
	if len(hdr) != heHeaderSize || bytes.Contains(hdr, alice.st.dhs.pub[:]) {
		t.Fatalf("frame header is not encrypted: %d bytes", len(hdr))
	}
	raw, _ := json.Marshal(f)
	if err := contracts.Validate("a2a/encrypted_frame", raw); err != nil {
		t.Fatalf("frame fails the contract schema: %v", err)
	}
	f2, err := ParseFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Two messages in a row have unrelated headers (fresh header nonces).
	a, _ := ParseFrame(raw)
	g, _ := alice.EncryptFrame(heSID, "alice", 8, []byte("framed"), time.Unix(1700000000, 0))
	if a.HeaderB64U == g.HeaderB64U || a.HeaderB64U[:20] == g.HeaderB64U[:20] {
		t.Fatal("headers repeat")
	}
	pt, err := bob.DecryptFrame(f2)
	if err != nil || string(pt) != "framed" {
		t.Fatalf("frame: %q %v", pt, err)
	}
}

func TestHeaderEncryptionNegotiation(t *testing.T) {
	p := sharedHybridPrekey(t)
	w, _ := identity.GenerateWallet("carol")
	cp, _ := GeneratePrekey(w.Signer(), nil)
	// The initiator asks for it; a contract bundle cannot give it.
	if _, _, err := InitiateHybrid(cp.Bundle(), Config{HeaderEncryption: true}); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("contract bundle: %v", err)
	}
	// The contract setup refuses the option rather than ignore it.
	if _, err := Initiate(cp.Bundle(), Config{HeaderEncryption: true}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Initiate: %v", err)
	}
	if _, err := Accept(cp, Config{HeaderEncryption: true}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Accept: %v", err)
	}
	// A responder that requires it refuses setup data without it.
	_, plainSetup, err := InitiateHybrid(p.Bundle(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcceptHybrid(p, plainSetup, Config{HeaderEncryption: true}); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("required, not requested: %v", err)
	}
	if _, err := AcceptHybrid(p, nil, Config{HeaderEncryption: true}); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("required, no setup: %v", err)
	}
	// The flag is bound into the keys: removing it from, or adding it to,
	// the setup data on the way makes the first message fail.
	alice, heSetup, err := InitiateHybrid(p.Bundle(), Config{HeaderEncryption: true})
	if err != nil {
		t.Fatal(err)
	}
	first := mustEncrypt(t, alice, "first")
	strippedSetup := *heSetup
	strippedSetup.HeaderEncryption = false
	bob, err := AcceptHybrid(p, &strippedSetup, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Decrypt(first); err == nil {
		t.Fatal("flag stripped: message opened")
	}
	plainAlice, plainSetup2, _ := InitiateHybrid(p.Bundle(), Config{})
	added := *plainSetup2
	added.HeaderEncryption = true
	bob2, err := AcceptHybrid(p, &added, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob2.Decrypt(mustEncrypt(t, plainAlice, "x")); err == nil {
		t.Fatal("flag added: message opened")
	}
	// header_encryption false is not an accepted encoding.
	raw, _ := json.Marshal(heSetup)
	if _, err := ParseHybridSetup(bytes.Replace(raw, []byte(`"header_encryption":true`), []byte(`"header_encryption":false`), 1)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("false flag: %v", err)
	}
}

func TestHeaderEncryptionBounds(t *testing.T) {
	alice, bob := newHEPair(t)
	mustDecrypt(t, bob, mustEncrypt(t, alice, "0"), "0")
	var ws [][]byte
	for i := 1; i <= 1002; i++ {
		ws = append(ws, mustEncrypt(t, alice, strconv.Itoa(i)))
	}
	before := bob.appendState(nil)
	if _, err := bob.Decrypt(ws[1001]); !errors.Is(err, ErrMaxSkipExceeded) {
		t.Fatalf("n=1002 after Nr=1: %v", err)
	}
	if !bytes.Equal(before, bob.appendState(nil)) {
		t.Fatal("state changed on failure")
	}
	mustDecrypt(t, bob, ws[1000], "1001")
	mustDecrypt(t, bob, ws[0], "1")
}

// TestHeaderEncryptionStateV2: header-encrypted sessions seal as state
// version 2; version 1 is still read and the flags must match the version.
func TestHeaderEncryptionStateV2(t *testing.T) {
	alice, bob := newHEPair(t)
	mustEncrypt(t, alice, "skipped")
	mustDecrypt(t, bob, mustEncrypt(t, alice, "x"), "x")
	st := bob.appendState(nil)
	if st[2] != stateVersionHE {
		t.Fatalf("version %d", st[2])
	}
	back, err := parseState(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.appendState(nil), st) || !back.HeaderEncrypted() {
		t.Fatal("v2 state does not round-trip")
	}
	mustDecrypt(t, alice, mustEncrypt(t, back, "from restored"), "from restored")
	plainA, plainB := newPair(t, Config{})
	mustDecrypt(t, plainB, mustEncrypt(t, plainA, "x"), "x")
	v1 := plainB.appendState(nil)
	if v1[2] != stateVersion {
		t.Fatalf("plain session written as version %d", v1[2])
	}
	for name, bad := range map[string][]byte{
		"v1 with HE flag":    append([]byte{'T', 'R', 1, v1[3] | flagHE}, v1[4:]...),
		"v1 with HK flag":    append([]byte{'T', 'R', 1, v1[3] | flagHKs}, v1[4:]...),
		"v2 without HE flag": append([]byte{'T', 'R', 2, st[3] &^ flagHE}, st[4:]...),
		"v2 too short":       append([]byte{'T', 'R', 2, v1[3] | flagHE}, v1[4:]...),
		"v2 truncated":       st[:len(st)-1],
	} {
		if _, err := parseState(bad, Config{}); contracts.CodeOf(err) != contracts.CodeCryptoError {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestHeaderEncryptionForgeriesAreTransactional: mutated, replayed,
// foreign and random envelopes fail with a ratchet code and leave the state
// byte-identical; the genuine pending messages still open.
func TestHeaderEncryptionForgeriesAreTransactional(t *testing.T) {
	alice, bob := newHEPair(t)
	r := mrand.New(mrand.NewPCG(3, 4))
	var delivered, skipped [][]byte
	for i := range 6 {
		w := mustEncrypt(t, alice, "m"+strconv.Itoa(i))
		if i%3 == 1 {
			skipped = append(skipped, w)
			continue
		}
		mustDecrypt(t, bob, w, "m"+strconv.Itoa(i))
		delivered = append(delivered, w)
	}
	mustDecrypt(t, alice, mustEncrypt(t, bob, "reply"), "reply")
	next := mustEncrypt(t, alice, "genuine")
	otherAlice, _ := newHEPair(t)
	foreign := mustEncrypt(t, otherAlice, "foreign")
	pool := append(append(append([][]byte{}, delivered...), skipped...), next)
	allowed := map[string]bool{
		string(contracts.CodeRatchetAuthFailed): true, string(contracts.CodeRatchetInvalidHeader): true,
	}
	before := bob.appendState(nil)
	codes := map[string]int{}
	for i := range 3000 {
		var f []byte
		base := pool[r.IntN(len(pool))]
		var p heParsed
		if err := parseHEWire(base, &p); err != nil {
			t.Fatal(err)
		}
		ct, _ := b64.DecodeString(string(p.ct))
		switch r.IntN(6) {
		case 0:
			f = bytes.Clone(base)
			f[r.IntN(len(f))] ^= 1 << r.IntN(8)
		case 1: // tamper with the encrypted header, keep the encoding
			p.eh[r.IntN(heHeaderSize)] ^= byte(1 + r.IntN(255))
			f = appendHEWire(nil, p.eh[:], p.nonce[:], ct)
		case 2: // tamper with the ciphertext
			ct[r.IntN(len(ct))] ^= byte(1 + r.IntN(255))
			f = appendHEWire(nil, p.eh[:], p.nonce[:], ct)
		case 3: // replay
			f = delivered[r.IntN(len(delivered))]
		case 4: // a message from another session
			f = foreign
		case 5: // a header from one message, the body of another
			var q heParsed
			other := pool[r.IntN(len(pool))]
			parseHEWire(other, &q)
			f = appendHEWire(nil, q.eh[:], p.nonce[:], ct)
		}
		if bytes.Equal(f, next) || containsMsg(skipped, f) {
			continue
		}
		_, err := bob.Decrypt(f)
		if err == nil || !allowed[string(contracts.CodeOf(err))] {
			t.Fatalf("forgery %d: %v", i, err)
		}
		codes[string(contracts.CodeOf(err))]++
		if !bytes.Equal(before, bob.appendState(nil)) {
			t.Fatalf("forgery %d changed the state", i)
		}
	}
	if len(codes) < 2 {
		t.Fatalf("too few paths: %v", codes)
	}
	mustDecrypt(t, bob, next, "genuine")
	for _, w := range skipped {
		if _, err := bob.Decrypt(w); err != nil {
			t.Fatalf("skipped message lost: %v", err)
		}
	}
}

// FuzzDecryptHE: Decrypt of a header-encrypted session never panics, and on
// error the state is byte-for-byte unchanged.
func FuzzDecryptHE(f *testing.F) {
	alice, bob := newHEPair(f)
	var wires [][]byte
	for _, m := range []string{"a", "b", "c"} {
		wires = append(wires, mustEncrypt(f, alice, m))
	}
	mustDecrypt(f, bob, wires[0], "a")
	state := bob.appendState(nil)
	for _, w := range wires {
		f.Add(w)
	}
	f.Add([]byte(`{"ciphertext":"","header":"","nonce":""}`))
	f.Fuzz(func(t *testing.T, wire []byte) {
		s, err := parseState(state, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decrypt(wire); err != nil {
			if c := contracts.CodeOf(err); c != contracts.CodeRatchetAuthFailed && c != contracts.CodeRatchetInvalidHeader &&
				c != contracts.CodeRatchetMaxSkipExceeded && c != contracts.CodeRatchetInvalidDHKey {
				t.Fatalf("code %s", c)
			}
			if got := s.appendState(nil); !bytes.Equal(got, state) {
				t.Fatalf("failed Decrypt changed the state: %v", err)
			}
		}
	})
}

// FuzzParseHEWire: an accepted header-encrypted envelope re-encodes to
// exactly its input; rejections are RATCHET_INVALID_HEADER.
func FuzzParseHEWire(f *testing.F) {
	alice, _ := newHEPair(f)
	f.Add(mustEncrypt(f, alice, "seed"))
	f.Fuzz(func(t *testing.T, wire []byte) {
		var p heParsed
		if err := parseHEWire(wire, &p); err != nil {
			if contracts.CodeOf(err) != contracts.CodeRatchetInvalidHeader {
				t.Fatalf("code %s", contracts.CodeOf(err))
			}
			return
		}
		ct, err := b64.DecodeString(string(p.ct))
		if err != nil {
			return // the ciphertext text is checked when it is decoded
		}
		if again := appendHEWire(nil, p.eh[:], p.nonce[:], ct); !bytes.Equal(again, wire) {
			t.Fatalf("accepted non-canonical envelope %q", wire)
		}
	})
}
