package ratchet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

var frameTime = time.Date(2026, 5, 3, 12, 0, 0, 123456789, time.UTC)

func TestFrameFromTrace(t *testing.T) {
	tr, b, _ := loadTrace(t, "v1_1_0_roundtrip.json")
	s1 := tr.Steps[0]
	alice, err := Initiate(b, Config{Rand: &script{cat(b64d(t, tr.Alice.Ephemeral), b64d(t, s1.Nonce))}})
	if err != nil {
		t.Fatal(err)
	}
	sid := "01890a5d-ac96-774b-bcce-b302099a8057"
	f, err := alice.EncryptFrame(sid, "agent:alice", 7, b64d(t, s1.Plaintext), frameTime)
	if err != nil {
		t.Fatal(err)
	}
	if f.HeaderB64U != s1.AAD {
		t.Fatalf("header_b64u %s, want the trace aad %s", f.HeaderB64U, s1.AAD)
	}
	if want := b64.EncodeToString(append(b64d(t, s1.Nonce), b64d(t, s1.Ciphertext)...)); f.CiphertextB64U != want {
		t.Fatalf("ciphertext_b64u %s, want b64u(nonce ‖ ct)", f.CiphertextB64U)
	}
	ctHash := sha256.Sum256(b64d(t, s1.Ciphertext))
	if f.CiphertextHash != hex.EncodeToString(ctHash[:]) {
		t.Fatal("ciphertext_hash is not sha256(ct ‖ tag)")
	}
	pre := `{"ciphertext_hash":"` + f.CiphertextHash + `","header_b64u":"` + s1.AAD +
		`","schema_id":"talos.a2a.encrypted_frame","schema_version":"v1","sender_id":"agent:alice","sender_seq":7,"session_id":"` + sid + `"}`
	d := sha256.Sum256([]byte(pre))
	if f.FrameDigest != hex.EncodeToString(d[:]) {
		t.Fatalf("frame_digest %s, want sha256 of %s", f.FrameDigest, pre)
	}
	if f.CreatedAt != "2026-05-03T12:00:00.123Z" {
		t.Fatalf("created_at %s", f.CreatedAt)
	}
	wire, err := f.Wire()
	if err != nil || string(wire) != string(b64d(t, s1.Wire)) {
		t.Fatalf("rebuilt wire %s, %v", wire, err)
	}
}

func TestFrameRoundTripAndTampering(t *testing.T) {
	alice, bob := newPair(t, Config{})
	sid := contracts.NewUUIDv7()
	f, err := alice.EncryptFrame(sid, "alice", 0, []byte("hello"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := contracts.Validate("a2a/encrypted_frame", raw); err != nil {
		t.Fatal(err)
	}
	g, err := ParseFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	if *g != *f {
		t.Fatalf("round trip: %+v", g)
	}
	mutate := func(fn func(*Frame)) []byte {
		c := *f
		fn(&c)
		b, _ := json.Marshal(&c)
		return b
	}
	for name, c := range map[string]struct {
		raw  []byte
		code string
	}{
		"seq changed":        {mutate(func(c *Frame) { c.SenderSeq++ }), string(contracts.CodeFrameInvalid)},
		"sender changed":     {mutate(func(c *Frame) { c.SenderID = "mallory" }), string(contracts.CodeFrameInvalid)},
		"ciphertext changed": {mutate(func(c *Frame) { c.CiphertextB64U = flipB64(c.CiphertextB64U, len(c.CiphertextB64U)-3) }), string(contracts.CodeFrameInvalid)},
		"header changed":     {mutate(func(c *Frame) { c.HeaderB64U = flipB64(c.HeaderB64U, 10) }), ""},
		"digest changed":     {mutate(func(c *Frame) { c.FrameDigest = strings.Repeat("0", 64) }), string(contracts.CodeFrameInvalid)},
		"bad session id":     {mutate(func(c *Frame) { c.SessionID = "not-a-uuid" }), string(contracts.CodeSchemaValidationError)},
		"unknown field":      {[]byte(strings.Replace(string(raw), `{`, `{"extra":1,`, 1)), string(contracts.CodeSchemaValidationError)},
		"missing field":      {[]byte(strings.Replace(string(raw), `"created_at"`, `"created"`, 1)), string(contracts.CodeSchemaValidationError)},
		"duplicate key":      {[]byte(strings.Replace(string(raw), `{`, `{"sender_id":"x",`, 1)), string(contracts.CodeInvalidInput)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseFrame(c.raw)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.code != "" && string(contracts.CodeOf(err)) != c.code {
				t.Fatalf("code %s (%v), want %s", contracts.CodeOf(err), err, c.code)
			}
		})
	}
	// The nonce and created_at are outside the digests: a changed nonce
	// verifies as a frame but fails authentication.
	nonceChanged := *f
	nonceChanged.CiphertextB64U = flipB64(f.CiphertextB64U, 0)
	if err := nonceChanged.Verify(); err != nil {
		t.Fatalf("nonce change should pass Verify: %v", err)
	}
	if _, err := bob.DecryptFrame(&nonceChanged); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("nonce change: %v", err)
	}
	pt, err := bob.DecryptFrame(g)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("DecryptFrame: %q, %v", pt, err)
	}
}

func flipB64(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestSeqTracker(t *testing.T) {
	alice, bob := newPair(t, Config{})
	sid := contracts.NewUUIDv7()
	tr := NewSeqTracker()
	deliver := func(f *Frame) (string, error) {
		d, err := tr.Check(f)
		if err != nil {
			return "", err
		}
		if d == Duplicate {
			return "dup", nil
		}
		pt, err := bob.DecryptFrame(f)
		if err != nil {
			return "", err
		}
		tr.Commit(f)
		return string(pt), nil
	}
	f0, _ := alice.EncryptFrame(sid, "alice", 0, []byte("zero"), time.Now())
	if got, err := deliver(f0); err != nil || got != "zero" {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := deliver(f0); err != nil || got != "dup" {
		t.Fatalf("identical resend: %q %v", got, err)
	}
	other, _ := alice.EncryptFrame(sid, "alice", 0, []byte("other"), time.Now())
	if _, err := deliver(other); contracts.CodeOf(err) != contracts.CodeReplayDetected {
		t.Fatalf("different frame, used seq: %v", err)
	}
	far, _ := alice.EncryptFrame(sid, "alice", MaxSeqAhead+1, []byte("far"), time.Now())
	if _, err := deliver(far); contracts.CodeOf(err) != contracts.CodeStateSequenceGap {
		t.Fatalf("too far ahead: %v", err)
	}
	edge, _ := alice.EncryptFrame(sid, "alice", MaxSeqAhead, []byte("edge"), time.Now())
	if got, err := deliver(edge); err != nil || got != "edge" {
		t.Fatalf("exactly MaxSeqAhead ahead: %q %v", got, err)
	}
	// A forged frame with a fresh sequence number does not burn it.
	genuine, _ := alice.EncryptFrame(sid, "alice", 5, []byte("five"), time.Now())
	forged := *genuine
	forged.CiphertextB64U = flipB64(genuine.CiphertextB64U, 0) // nonce: frame still verifies
	if _, err := deliver(&forged); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("forged: %v", err)
	}
	if got, err := deliver(genuine); err != nil || got != "five" {
		t.Fatalf("genuine after forgery: %q %v", got, err)
	}
	// Streams are per (session, sender).
	f0b, _ := alice.EncryptFrame(sid, "alice-2", 0, []byte("b"), time.Now())
	if got, err := deliver(f0b); err != nil || got != "b" {
		t.Fatalf("second stream: %q %v", got, err)
	}
}

func TestSeqTrackerPersists(t *testing.T) {
	alice, bob := newPair(t, Config{})
	sid := contracts.NewUUIDv7()
	tr := NewSeqTracker()
	var frames []*Frame
	for i := range 3 {
		f, _ := alice.EncryptFrame(sid, "alice", uint64(1000+i*900), []byte("x"), time.Now())
		frames = append(frames, f)
	}
	// A fresh tracker refuses a stream already far along.
	if _, err := tr.Check(frames[1]); contracts.CodeOf(err) != contracts.CodeStateSequenceGap {
		t.Fatalf("fresh tracker, seq 1900: %v", err)
	}
	tr.Commit(frames[0])
	saved, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	restored := NewSeqTracker()
	if err := json.Unmarshal(saved, restored); err != nil {
		t.Fatal(err)
	}
	if d, err := restored.Check(frames[0]); err != nil || d != Duplicate {
		t.Fatalf("restored tracker, resend: %v %v", d, err)
	}
	if d, err := restored.Check(frames[1]); err != nil || d != Deliver {
		t.Fatalf("restored tracker, next: %v %v", d, err)
	}
	if _, err := bob.DecryptFrame(frames[0]); err != nil {
		t.Fatal(err)
	}
}
