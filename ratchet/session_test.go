package ratchet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

func newPair(t testing.TB, cfg Config) (alice, bob *Session) {
	t.Helper()
	w, err := identity.GenerateWallet("bob")
	if err != nil {
		t.Fatal(err)
	}
	p, err := GeneratePrekey(w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, err = Initiate(p.Bundle(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bob, err = Accept(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func mustEncrypt(t testing.TB, s *Session, msg string) []byte {
	t.Helper()
	w, err := s.Encrypt([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustDecrypt(t testing.TB, s *Session, w []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(w)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("got %q, want %q", pt, want)
	}
}

func TestConversation(t *testing.T) {
	alice, bob := newPair(t, Config{})
	if _, err := bob.Encrypt([]byte("too early")); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("responder sent before receiving: %v", err)
	}
	for round := range 20 {
		for i := range round % 4 {
			mustDecrypt(t, bob, mustEncrypt(t, alice, fmt.Sprint("a", round, i)), fmt.Sprint("a", round, i))
		}
		if round%4 == 0 {
			mustDecrypt(t, bob, mustEncrypt(t, alice, "x"), "x")
		}
		mustDecrypt(t, alice, mustEncrypt(t, bob, fmt.Sprint("b", round)), fmt.Sprint("b", round))
	}
	// Empty plaintexts work.
	mustDecrypt(t, bob, mustEncrypt(t, alice, ""), "")
}

func TestOutOfOrderAcrossRatchets(t *testing.T) {
	alice, bob := newPair(t, Config{})
	var late [][]byte
	for i := range 5 {
		w := mustEncrypt(t, alice, "a"+strconv.Itoa(i))
		if i%2 == 0 {
			late = append(late, w)
		} else {
			mustDecrypt(t, bob, w, "a"+strconv.Itoa(i))
		}
	}
	mustDecrypt(t, alice, mustEncrypt(t, bob, "b"), "b")
	w := mustEncrypt(t, alice, "new chain")
	mustDecrypt(t, bob, w, "new chain")
	// Messages of the old chain still open, each exactly once.
	for i, w := range late {
		mustDecrypt(t, bob, w, "a"+strconv.Itoa(2*i))
		if _, err := bob.Decrypt(w); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("replay of a skipped message: %v", err)
		}
	}
	if bob.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left", bob.SkippedKeys())
	}
	if _, err := bob.Decrypt(w); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("replay: %v", err)
	}
}

func TestSkippedStoreBoundedEvictsOldest(t *testing.T) {
	alice, bob := newPair(t, Config{MaxSkippedKeys: 10})
	var ws [][]byte
	for i := range 31 {
		ws = append(ws, mustEncrypt(t, alice, strconv.Itoa(i)))
	}
	mustDecrypt(t, bob, ws[30], "30") // skips 0..29; only 20..29 are kept
	if bob.SkippedKeys() != 10 {
		t.Fatalf("%d skipped keys, want 10", bob.SkippedKeys())
	}
	for i := range 20 {
		if _, err := bob.Decrypt(ws[i]); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("evicted message %d: %v", i, err)
		}
	}
	for i := 20; i < 30; i++ {
		mustDecrypt(t, bob, ws[i], strconv.Itoa(i))
	}
}

func TestMaxSkipBoundary(t *testing.T) {
	alice, bob := newPair(t, Config{})
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
	mustDecrypt(t, bob, ws[1000], "1001") // n=1001 is the last acceptable
	mustDecrypt(t, bob, ws[1001], "1002")
	mustDecrypt(t, bob, ws[0], "1")
}

func TestHeaderLimits(t *testing.T) {
	alice, bob := newPair(t, Config{})
	w := string(mustEncrypt(t, alice, "hi"))
	m, _ := ParseMessage([]byte(w))
	hdr := string(m.Header.AppendCanonical(nil))
	for name, c := range map[string]struct {
		wire string
		code string
	}{
		"n beyond uint32":   {replaceOnce(w, `"n":0`, `"n":4294967296`), string(contracts.CodeRatchetInvalidHeader)},
		"pn beyond uint32":  {replaceOnce(w, `"pn":0`, `"pn":4294967296`), string(contracts.CodeRatchetInvalidHeader)},
		"negative n":        {replaceOnce(w, `"n":0`, `"n":-1`), string(contracts.CodeRatchetInvalidHeader)},
		"leading zero":      {replaceOnce(w, `"n":0`, `"n":00`), string(contracts.CodeRatchetInvalidHeader)},
		"float":             {replaceOnce(w, `"n":0`, `"n":0.0`), string(contracts.CodeRatchetInvalidHeader)},
		"whitespace":        {replaceOnce(w, `"n":0`, `"n": 0`), string(contracts.CodeRatchetInvalidHeader)},
		"short nonce":       {replaceOnce(w, `"nonce":"`, `"nonce":"AAAA`)[:len(w)-4] + `"}`, string(contracts.CodeRatchetInvalidHeader)},
		"trailing data":     {w + " ", string(contracts.CodeRatchetInvalidHeader)},
		"reordered keys":    {`{"header":` + hdr + `,"ciphertext":"` + b64.EncodeToString(m.Ciphertext) + `","nonce":"` + b64.EncodeToString(m.Nonce) + `"}`, string(contracts.CodeRatchetInvalidHeader)},
		"all-zero dh":       {replaceOnce(w, b64.EncodeToString(m.Header.DH[:]), b64.EncodeToString(make([]byte, 32))), string(contracts.CodeRatchetInvalidDHKey)},
		"huge n":            {replaceOnce(w, `"n":0`, `"n":4294967295`), string(contracts.CodeRatchetMaxSkipExceeded)},
		"non-canonical b64": {replaceOnce(w, `"nonce":"`+b64.EncodeToString(m.Nonce), `"nonce":"`+b64.EncodeToString(m.Nonce)+"="), string(contracts.CodeRatchetInvalidHeader)},
		"not json":          {"hello", string(contracts.CodeRatchetInvalidHeader)},
	} {
		t.Run(name, func(t *testing.T) {
			before := bob.appendState(nil)
			_, err := bob.Decrypt([]byte(c.wire))
			if got := contracts.CodeOf(err); string(got) != c.code {
				t.Fatalf("code %s (%v), want %s", got, err, c.code)
			}
			if !bytes.Equal(before, bob.appendState(nil)) {
				t.Fatal("state changed on failure")
			}
		})
	}
	mustDecrypt(t, bob, []byte(w), "hi")
}

func replaceOnce(s, old, new string) string {
	i := bytes.Index([]byte(s), []byte(old))
	if i < 0 {
		panic("not found: " + old)
	}
	return s[:i] + new + s[i+len(old):]
}

func TestLowOrderPrekeyRejected(t *testing.T) {
	w, err := identity.GenerateWallet("bob")
	if err != nil {
		t.Fatal(err)
	}
	var zero [32]byte
	b := PrekeyBundle{IdentityKey: w.PublicKey(), SignedPrekey: zero, PrekeySignature: w.Sign(zero[:])}
	if _, err := Initiate(b, Config{}); !errors.Is(err, ErrInvalidDHKey) {
		t.Fatalf("low-order prekey: %v", err)
	}
	b.PrekeySignature = w.Sign([]byte("something else"))
	if _, err := Initiate(b, Config{}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("bad signature: %v", err)
	}
}

// TestForgeriesAreTransactional feeds 10,000 forgeries and mutations of
// valid messages to a session that holds skipped keys. Each must fail with a
// ratchet code and leave the serialized state byte-identical; afterwards the
// genuine pending messages still decrypt.
func TestForgeriesAreTransactional(t *testing.T) {
	t.Parallel()
	alice, bob := newPair(t, Config{})
	r := mrand.New(mrand.NewPCG(1, 2))
	// Build a history: delivered messages (replays), skipped ones, a DH step.
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
	for i := range 3 {
		w := mustEncrypt(t, alice, "n"+strconv.Itoa(i))
		if i == 0 {
			skipped = append(skipped, w)
			continue
		}
		mustDecrypt(t, bob, w, "n"+strconv.Itoa(i))
		delivered = append(delivered, w)
	}
	next := mustEncrypt(t, alice, "genuine")
	pool := append(append(append([][]byte{}, delivered...), skipped...), next)
	otherAlice, _ := newPair(t, Config{})
	foreign := mustEncrypt(t, otherAlice, "foreign")

	allowed := map[string]bool{
		string(contracts.CodeRatchetAuthFailed): true, string(contracts.CodeRatchetInvalidHeader): true,
		string(contracts.CodeRatchetMaxSkipExceeded): true, string(contracts.CodeRatchetInvalidDHKey): true,
	}
	before := bob.appendState(nil)
	codes := map[string]int{}
	const N = 10000
	for i := range N {
		f := forge(r, pool, delivered, foreign)
		if bytes.Equal(f, next) || containsMsg(skipped, f) {
			continue // a mutation that happens to restore a genuine message
		}
		_, err := bob.Decrypt(f)
		code := contracts.CodeOf(err)
		if err == nil || !allowed[string(code)] {
			t.Fatalf("forgery %d (%s): err %v", i, f, err)
		}
		codes[string(code)]++
		if after := bob.appendState(nil); !bytes.Equal(before, after) {
			t.Fatalf("forgery %d (%s) changed the state", i, f)
		}
	}
	t.Logf("outcomes: %v", codes)
	if len(codes) < 3 {
		t.Fatalf("forgeries exercised too few paths: %v", codes)
	}
	mustDecrypt(t, bob, next, "genuine")
	for _, w := range skipped {
		if _, err := bob.Decrypt(w); err != nil {
			t.Fatalf("skipped message lost after forgeries: %v", err)
		}
	}
}

func containsMsg(list [][]byte, m []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, m) {
			return true
		}
	}
	return false
}

var freshKeys = func() (keys [8][32]byte) {
	for i := range keys {
		var priv [32]byte
		rand.Read(priv[:])
		keys[i] = publicKey(&priv)
	}
	return keys
}()

// forge returns one random forgery.
func forge(r *mrand.Rand, pool, delivered [][]byte, foreign []byte) []byte {
	base := pool[r.IntN(len(pool))]
	m, err := ParseMessage(base)
	if err != nil {
		panic(err)
	}
	switch r.IntN(10) {
	case 0: // flip one bit anywhere
		f := bytes.Clone(base)
		f[r.IntN(len(f))] ^= 1 << r.IntN(8)
		return f
	case 1: // tamper with the ciphertext, keep the encoding canonical
		m.Ciphertext[r.IntN(len(m.Ciphertext))] ^= byte(1 + r.IntN(255))
	case 2: // tamper with the nonce
		m.Nonce[r.IntN(nonceSize)] ^= byte(1 + r.IntN(255))
	case 3: // change n or pn a little
		m.Header.N = uint32(r.IntN(40))
		m.Header.PN = uint32(r.IntN(40))
	case 4: // a fresh ratchet key (forces a staged DH step)
		m.Header.DH = freshKeys[r.IntN(len(freshKeys))]
		m.Header.N = uint32(r.IntN(20))
		m.Header.PN = uint32(r.IntN(20))
	case 5: // replay
		return delivered[r.IntN(len(delivered))]
	case 6: // truncate or extend
		if r.IntN(2) == 0 {
			return base[:r.IntN(len(base))]
		}
		return append(bytes.Clone(base), byte(r.IntN(256)))
	case 7: // random ciphertext of random length
		m.Ciphertext = make([]byte, r.IntN(64))
		for i := range m.Ciphertext {
			m.Ciphertext[i] = byte(r.Uint32())
		}
	case 8: // a message from another session
		return foreign
	case 9: // too far ahead, or a low-order key
		if r.IntN(2) == 0 {
			m.Header.N = uint32(MaxSkip + 2 + r.IntN(1<<20))
		} else {
			m.Header.DH = [32]byte{}
		}
	}
	return m.AppendWire(nil)
}

func TestStateRoundTrip(t *testing.T) {
	alice, bob := newPair(t, Config{})
	mustEncrypt(t, alice, "skipped")
	mustDecrypt(t, bob, mustEncrypt(t, alice, "x"), "x")
	st := bob.appendState(nil)
	back, err := parseState(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.appendState(nil), st) {
		t.Fatal("state does not round-trip")
	}
	for _, i := range []int{0, 1, 2, 3, 4 + 32} { // magic, version, flags, public key
		bad := bytes.Clone(st)
		bad[i] ^= 0x80
		if _, err := parseState(bad, Config{}); err == nil {
			t.Fatalf("corrupt byte %d accepted", i)
		}
	}
	if _, err := parseState(st[:len(st)-1], Config{}); err == nil {
		t.Fatal("truncated state accepted")
	}
}

func TestDestroy(t *testing.T) {
	alice, bob := newPair(t, Config{})
	w := mustEncrypt(t, alice, "x")
	mustEncrypt(t, alice, "skipped")
	w3 := mustEncrypt(t, alice, "y")
	mustDecrypt(t, bob, w3, "y")
	bob.Destroy()
	if st := bob.appendState(nil); !bytes.Equal(st[4:len(st)-4], make([]byte, len(st)-8)) {
		t.Fatal("secrets left after Destroy")
	}
	if _, err := bob.Decrypt(w); err == nil {
		t.Fatal("destroyed session decrypted")
	}
	if _, err := bob.Encrypt([]byte("z")); err == nil {
		t.Fatal("destroyed session encrypted")
	}
}
