package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestMaxForwardJumpAcrossDHStep: one message may not make the receiver
// derive more than MaxForwardJump keys over the old chain's tail and the new
// chain together, though each part is within MaxSkip.
func TestMaxForwardJumpAcrossDHStep(t *testing.T) {
	alice, bob := newPair(t, Config{})
	mustDecrypt(t, bob, mustEncrypt(t, alice, "0"), "0") // bob: nr = 1
	for i := 1; i <= 600; i++ {
		mustEncrypt(t, alice, "lost") // undelivered: chain 1 ends at pn = 601
	}
	mustDecrypt(t, alice, mustEncrypt(t, bob, "reply"), "reply")
	var ws [][]byte
	for i := range 501 {
		ws = append(ws, mustEncrypt(t, alice, strconv.Itoa(i)))
	}
	before := bob.appendState(nil)
	// 600 keys of chain 1's tail + 500 of chain 2 = 1100 > MaxForwardJump.
	if _, err := bob.Decrypt(ws[500]); !errors.Is(err, ErrMaxSkipExceeded) {
		t.Fatalf("jump of 1100 keys: %v", err)
	}
	if !bytes.Equal(before, bob.appendState(nil)) {
		t.Fatal("state changed on a refused jump")
	}
	// 600 + 400 = 1000 is the largest accepted jump.
	if MaxForwardJump != 1000 {
		t.Fatalf("MaxForwardJump = %d; adjust the test", MaxForwardJump)
	}
	if _, err := bob.Decrypt(ws[401]); !errors.Is(err, ErrMaxSkipExceeded) {
		t.Fatalf("jump of 1001 keys: %v", err)
	}
	mustDecrypt(t, bob, ws[400], "400")
	if got := bob.SkippedKeys(); got != 1000 {
		t.Fatalf("%d skipped keys after the jump, want 1000", got)
	}
	// The rest of chain 2 is within MaxSkip of the new position.
	mustDecrypt(t, bob, ws[500], "500")
}

// TestReceivingChainsBounded: skipped keys are kept for at most
// MaxReceivingChains chains; the oldest chain's keys go first.
func TestReceivingChainsBounded(t *testing.T) {
	alice, bob := newPair(t, Config{})
	var late [][]byte
	rounds := MaxReceivingChains + 2
	for r := range rounds {
		late = append(late, mustEncrypt(t, alice, fmt.Sprint("late", r)))
		mustDecrypt(t, bob, mustEncrypt(t, alice, fmt.Sprint("on time", r)), fmt.Sprint("on time", r))
		mustDecrypt(t, alice, mustEncrypt(t, bob, "ack"), "ack")
	}
	if got := bob.SkippedKeys(); got != MaxReceivingChains {
		t.Fatalf("%d skipped keys, want one per kept chain (%d)", got, MaxReceivingChains)
	}
	// The state keeps the bound too (a state written with more chains, by an
	// older version, is trimmed when read).
	back, err := parseState(bob.appendState(nil), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if back.SkippedKeys() != MaxReceivingChains {
		t.Fatalf("restored: %d skipped keys", back.SkippedKeys())
	}
	for r, w := range late {
		_, err := bob.Decrypt(w)
		if r < rounds-MaxReceivingChains {
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("chain %d beyond the bound: %v", r, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("chain %d within the bound: %v", r, err)
		}
	}
}

func newRecordPair(t *testing.T, p *Prekey) (alice, bob *Session) {
	t.Helper()
	a, err := Initiate(p.Bundle(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Accept(p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestRecordArchiveBounded: a Record keeps MaxArchivedSessions earlier
// sessions; messages in flight on an archived one still open (and make it
// current); the oldest beyond the bound are gone.
func TestRecordArchiveBounded(t *testing.T) {
	w, err := identity.GenerateWallet("bob")
	if err != nil {
		t.Fatal(err)
	}
	p, err := GeneratePrekey(w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecord(nil)
	if _, err := rec.Encrypt([]byte("x")); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("encrypt without a session: %v", err)
	}
	total := MaxArchivedSessions + 3 // current + 40 archived + 2 dropped
	inflight := make([][]byte, total)
	var lastAlice *Session
	for i := range total {
		a, b := newRecordPair(t, p)
		first := mustEncrypt(t, a, fmt.Sprint("hello", i))
		inflight[i] = mustEncrypt(t, a, fmt.Sprint("in flight", i))
		rec.Promote(b)
		pt, err := rec.Decrypt(first)
		if err != nil || string(pt) != fmt.Sprint("hello", i) {
			t.Fatalf("session %d: %q %v", i, pt, err)
		}
		lastAlice = a
	}
	if rec.Archived() != MaxArchivedSessions {
		t.Fatalf("%d archived, want %d", rec.Archived(), MaxArchivedSessions)
	}
	// Sealed round trip keeps all of them.
	kr := identity.NewKeyring()
	if err := kr.Add("k", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	kr.SetPrimary("k")
	sealed, err := rec.MarshalSealed(kr, []byte("peer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalRecordSealed(kr, sealed, []byte("other peer"), Config{}); contracts.CodeOf(err) != contracts.CodeCryptoError {
		t.Fatalf("record opened under another aad: %v", err)
	}
	rec, err = UnmarshalRecordSealed(kr, sealed, []byte("peer"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Archived() != MaxArchivedSessions || rec.Current() == nil {
		t.Fatalf("restored record: %d archived", rec.Archived())
	}
	// The two oldest sessions were dropped.
	for i := range 2 {
		if _, err := rec.Decrypt(inflight[i]); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("session %d beyond the archive: %v", i, err)
		}
	}
	// A message on an archived session opens and makes it current.
	pt, err := rec.Decrypt(inflight[5])
	if err != nil || string(pt) != "in flight5" {
		t.Fatalf("archived session: %q %v", pt, err)
	}
	if rec.Archived() != MaxArchivedSessions {
		t.Fatalf("%d archived after promotion", rec.Archived())
	}
	// The newest session is archived now; its peer's messages still open.
	w2 := mustEncrypt(t, lastAlice, "later")
	if pt, err := rec.Decrypt(w2); err != nil || string(pt) != "later" {
		t.Fatalf("previous current session: %q %v", pt, err)
	}
	// Garbage is refused by the parser before any session is tried.
	if _, err := rec.Decrypt([]byte("{}")); !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("garbage: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %s %x", rec, rec, rec, rec); bytes.Contains([]byte(s), []byte("0x")) {
		t.Fatalf("record formats as %s", s)
	}
	rec.Destroy()
	if _, err := rec.Decrypt(w2); err == nil {
		t.Fatal("destroyed record decrypted")
	}
}

func TestParseRecordRejects(t *testing.T) {
	alice, bob := newPair(t, Config{})
	mustDecrypt(t, bob, mustEncrypt(t, alice, "x"), "x")
	rec := NewRecord(bob)
	rec.Promote(alice)
	good := recordBytes(rec)
	if _, err := parseRecord(good, Config{}); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":       nil,
		"magic":       append([]byte{'X'}, good[1:]...),
		"version":     append([]byte{'T', 'C', 2}, good[3:]...),
		"current > 1": append([]byte{'T', 'C', 1, 2}, good[4:]...),
		"count":       append([]byte{'T', 'C', 1, 1, MaxArchivedSessions + 1}, good[5:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"bad length":  append(append([]byte{}, good[:5]...), 0xff, 0xff, 0xff, 0xff),
	}
	for name, b := range cases {
		if _, err := parseRecord(b, Config{}); contracts.CodeOf(err) != contracts.CodeCryptoError {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// recordBytes is the unsealed serialization of r, for parser tests.
func recordBytes(r *Record) []byte {
	var out []byte
	_, _ = r.MarshalSealed(captureSealer{&out}, nil)
	return out
}

type captureSealer struct{ out *[]byte }

func (c captureSealer) Seal(pt, _ []byte) ([]byte, error) {
	*c.out = bytes.Clone(pt)
	return nil, nil
}
func (c captureSealer) Open(b, _ []byte) ([]byte, error) { return b, nil }

// FuzzParseRecord: the record parser never panics, fails with a typed
// error, and what it accepts round-trips.
func FuzzParseRecord(f *testing.F) {
	alice, bob := newPair(f, Config{})
	mustDecrypt(f, bob, mustEncrypt(f, alice, "x"), "x")
	rec := NewRecord(bob)
	rec.Promote(alice)
	f.Add(recordBytes(rec))
	f.Add(recordBytes(NewRecord(nil)))
	f.Add([]byte{'T', 'C', 1, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b, Config{})
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeCryptoError {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Reading may trim (skipped-key bounds); what it yields is stable.
		once := recordBytes(r)
		r2, err := parseRecord(once, Config{})
		if err != nil {
			t.Fatalf("re-serialized record refused: %v", err)
		}
		if !bytes.Equal(recordBytes(r2), once) {
			t.Fatal("accepted record does not round-trip")
		}
	})
}
