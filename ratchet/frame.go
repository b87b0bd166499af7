package ratchet

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Frame schema constants (contract a2a/encrypted_frame).
const (
	FrameSchemaID      = "talos.a2a.encrypted_frame"
	FrameSchemaVersion = "v1"
	frameTimeLayout    = "2006-01-02T15:04:05.000Z"
)

// A Frame is an A2A encrypted frame (contract talos.a2a.encrypted_frame v1):
// one ratchet message with its routing metadata and digests.
//
//   - HeaderB64U is b64u(canonical ratchet header);
//   - CiphertextB64U is b64u(nonce ‖ ciphertext ‖ tag);
//   - CiphertextHash is hex(sha256(ciphertext ‖ tag)), without the nonce;
//   - FrameDigest is hex(sha256(JCS({schema_id, schema_version, session_id,
//     sender_id, sender_seq, header_b64u, ciphertext_hash}))).
//
// CreatedAt is not covered by any digest or by the AEAD: do not trust it.
type Frame struct {
	SchemaID       string `json:"schema_id"`
	SchemaVersion  string `json:"schema_version"`
	SessionID      string `json:"session_id"`
	SenderID       string `json:"sender_id"`
	SenderSeq      uint64 `json:"sender_seq"`
	HeaderB64U     string `json:"header_b64u"`
	CiphertextB64U string `json:"ciphertext_b64u"`
	FrameDigest    string `json:"frame_digest"`
	CiphertextHash string `json:"ciphertext_hash"`
	CreatedAt      string `json:"created_at"`
}

type framePreimage struct {
	SchemaID       string `json:"schema_id"`
	SchemaVersion  string `json:"schema_version"`
	SessionID      string `json:"session_id"`
	SenderID       string `json:"sender_id"`
	SenderSeq      uint64 `json:"sender_seq"`
	HeaderB64U     string `json:"header_b64u"`
	CiphertextHash string `json:"ciphertext_hash"`
}

func errFrame(msg string) error {
	return contracts.New(contracts.CodeFrameInvalid, "ratchet: frame: "+msg)
}

// digest computes the frame digest over f's covered fields.
func (f *Frame) digest() (string, error) {
	b, err := contracts.Marshal(framePreimage{
		SchemaID: f.SchemaID, SchemaVersion: f.SchemaVersion, SessionID: f.SessionID,
		SenderID: f.SenderID, SenderSeq: f.SenderSeq, HeaderB64U: f.HeaderB64U,
		CiphertextHash: f.CiphertextHash,
	})
	if err != nil {
		return "", errFrame("digest preimage: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// BuildFrame wraps a ratchet wire envelope (Session.Encrypt output) into an
// encrypted frame from senderID in sessionID with the sender-local sequence
// number seq. Reserve seq before encrypting and reuse the same frame on
// retries, so that resends are idempotent for the receiver.
//
// A header-encrypted envelope (Session.HeaderEncrypted) is framed the same
// way with header_b64u = b64u(encrypted header), so the relay carrying
// the frame sees no ratchet key or counter.
func BuildFrame(sessionID, senderID string, seq uint64, wire []byte, now time.Time) (*Frame, error) {
	m, err := ParseMessage(wire)
	var hdr []byte
	if err == nil {
		hdr = m.Header.AppendCanonical(nil)
	} else {
		var p heParsed
		if parseHEWire(wire, &p) != nil {
			return nil, err
		}
		ct, derr := b64.DecodeString(string(p.ct))
		if derr != nil {
			return nil, errHeader("invalid ciphertext encoding")
		}
		m, hdr = &Message{Nonce: p.nonce[:], Ciphertext: ct}, p.eh[:]
	}
	if seq > contracts.MaxSafeInteger {
		return nil, errFrame("sender_seq too large")
	}
	ctHash := sha256.Sum256(m.Ciphertext)
	f := &Frame{
		SchemaID:       FrameSchemaID,
		SchemaVersion:  FrameSchemaVersion,
		SessionID:      sessionID,
		SenderID:       senderID,
		SenderSeq:      seq,
		HeaderB64U:     b64.EncodeToString(hdr),
		CiphertextB64U: b64.EncodeToString(append(m.Nonce, m.Ciphertext...)),
		CiphertextHash: hex.EncodeToString(ctHash[:]),
		CreatedAt:      now.UTC().Format(frameTimeLayout),
	}
	if f.FrameDigest, err = f.digest(); err != nil {
		return nil, err
	}
	raw, err := f.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := contracts.Validate("a2a/encrypted_frame", raw); err != nil {
		return nil, err
	}
	return f, nil
}

// MarshalJSON returns the frame's canonical JSON.
func (f *Frame) MarshalJSON() ([]byte, error) {
	type plain Frame
	return contracts.Marshal((*plain)(f))
}

// ParseFrame parses and verifies a JSON frame: it must match the contract
// schema, and Verify must pass. Errors are *contracts.Error:
// SCHEMA_VALIDATION_ERROR or TALOS_INVALID_INPUT for the JSON,
// TALOS_FRAME_INVALID for a digest or hash mismatch, RATCHET_INVALID_HEADER
// for the embedded header.
func ParseFrame(raw []byte) (*Frame, error) {
	if len(raw) > MaxFrameSize {
		return nil, errFrame("too large")
	}
	if err := contracts.Validate("a2a/encrypted_frame", raw); err != nil {
		return nil, err
	}
	type plain Frame
	var f plain
	if err := contracts.UnmarshalStrict(raw, &f); err != nil {
		return nil, err
	}
	ff := (*Frame)(&f)
	if err := ff.Verify(); err != nil {
		return nil, err
	}
	return ff, nil
}

// Verify checks a frame's internal consistency: schema constants, the
// embedded header, the ciphertext hash and the frame digest. It does not
// decrypt; Session.DecryptFrame does both.
func (f *Frame) Verify() error {
	_, err := f.Wire()
	return err
}

// Wire verifies f and rebuilds the canonical ratchet wire envelope it
// carries.
func (f *Frame) Wire() ([]byte, error) {
	if f.SchemaID != FrameSchemaID || f.SchemaVersion != FrameSchemaVersion {
		return nil, errFrame("wrong schema_id or schema_version")
	}
	if f.SenderSeq > contracts.MaxSafeInteger {
		return nil, errFrame("sender_seq too large")
	}
	if l := len(f.SessionID); l == 0 || l > maxIDLen {
		return nil, errFrame("bad session_id")
	}
	if l := len(f.SenderID); l == 0 || l > maxIDLen {
		return nil, errFrame("bad sender_id")
	}
	if len(f.CiphertextB64U) > maxWireSize {
		return nil, errFrame("ciphertext too large")
	}
	hdrRaw, err := contracts.DecodeBase64URL(f.HeaderB64U)
	if err != nil {
		return nil, errHeader("frame header_b64u is not base64url")
	}
	h, err := ParseHeader(hdrRaw)
	he := false
	if err != nil {
		// An encrypted header (68 bytes of ciphertext) never parses as a
		// canonical JSON header.
		if len(hdrRaw) != heHeaderSize {
			return nil, err
		}
		he = true
	}
	body, err := contracts.DecodeBase64URL(f.CiphertextB64U)
	if err != nil {
		return nil, errFrame("ciphertext_b64u is not base64url")
	}
	if len(body) < nonceSize+tagSize {
		return nil, errFrame("ciphertext_b64u too short")
	}
	nonce, ct := body[:nonceSize], body[nonceSize:]
	sum := sha256.Sum256(ct)
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(f.CiphertextHash)) != 1 {
		return nil, errFrame("ciphertext_hash does not match")
	}
	d, err := f.digest()
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(d), []byte(f.FrameDigest)) != 1 {
		return nil, errFrame("frame_digest does not match")
	}
	if he {
		return appendHEWire(nil, hdrRaw, nonce, ct), nil
	}
	return appendWire(make([]byte, 0, wireLen(&h, len(ct))), &h, nonce, ct), nil
}

// EncryptFrame encrypts plaintext and wraps it into a frame (see
// BuildFrame). On error the session is unchanged except when the frame
// cannot be built after encryption, which only happens for invalid ids.
func (s *Session) EncryptFrame(sessionID, senderID string, seq uint64, plaintext []byte, now time.Time) (*Frame, error) {
	if l := len(sessionID); l == 0 || l > maxIDLen {
		return nil, errFrame("bad session_id")
	}
	if l := len(senderID); l == 0 || l > maxIDLen {
		return nil, errFrame("bad sender_id")
	}
	saved := s.st
	wire, err := s.Encrypt(plaintext)
	if err != nil {
		return nil, err
	}
	f, err := BuildFrame(sessionID, senderID, seq, wire, now)
	if err != nil {
		s.st = saved
		return nil, err
	}
	return f, nil
}

// DecryptFrame verifies f and decrypts the message it carries
// (transactionally, like Decrypt). It does not apply sender_seq rules; use
// a SeqTracker for those.
func (s *Session) DecryptFrame(f *Frame) ([]byte, error) {
	wire, err := f.Wire()
	if err != nil {
		return nil, err
	}
	return s.Decrypt(wire)
}

// A SeqTracker applies the receiver-side sender_seq rules per (session,
// sender): an identical resend of a delivered frame is idempotent, a
// different frame with a used sender_seq is a replay, and a sender_seq more
// than MaxSeqAhead beyond the highest delivered one is too far ahead.
// Sequence numbers more than its window (4096) behind the highest are
// refused as replays, since they can no longer be told apart.
//
// Check before decrypting and Commit only after the frame decrypted, so
// that a forged frame cannot burn a sequence number. A SeqTracker is safe
// for concurrent use; it holds one entry per (session, sender) until
// Forget. Save it with MarshalJSON beside the session state: a fresh
// tracker accepts only sender_seq ≤ MaxSeqAhead on a stream it has not
// seen.
type SeqTracker struct {
	mu      sync.Mutex // guards streams
	streams map[[2]string]*seqStream
}

type seqStream struct {
	highest uint64
	any     bool
	digests map[uint64]string
}

// Disposition is the result of SeqTracker.Check.
type Disposition int

const (
	// Deliver: a new frame; decrypt it, then Commit it.
	Deliver Disposition = iota
	// Duplicate: an identical resend of a committed frame; acknowledge it
	// again without decrypting or delivering.
	Duplicate
)

// NewSeqTracker returns an empty tracker.
func NewSeqTracker() *SeqTracker {
	return &SeqTracker{streams: make(map[[2]string]*seqStream)}
}

// Check classifies f without changing the tracker. It returns an error
// with code REPLAY_DETECTED for a different frame with a used (or too old)
// sender_seq, and STATE_SEQUENCE_GAP for one too far ahead.
func (t *SeqTracker) Check(f *Frame) (Disposition, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[[2]string{f.SessionID, f.SenderID}]
	var base uint64
	if st != nil {
		base = st.highest
		if d, ok := st.digests[f.SenderSeq]; ok {
			if d == f.FrameDigest {
				return Duplicate, nil
			}
			return Deliver, contracts.New(contracts.CodeReplayDetected, "ratchet: frame: sender_seq already used by another frame")
		}
		if st.any && f.SenderSeq+maxSeqWindow <= st.highest {
			return Deliver, contracts.New(contracts.CodeReplayDetected, "ratchet: frame: sender_seq too old")
		}
	}
	if f.SenderSeq > base && f.SenderSeq-base > MaxSeqAhead {
		return Deliver, contracts.New(contracts.CodeStateSequenceGap, "ratchet: frame: sender_seq too far ahead")
	}
	return Deliver, nil
}

// Commit records a delivered frame.
func (t *SeqTracker) Commit(f *Frame) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{f.SessionID, f.SenderID}
	st := t.streams[k]
	if st == nil {
		st = &seqStream{digests: make(map[uint64]string)}
		t.streams[k] = st
	}
	st.digests[f.SenderSeq] = f.FrameDigest
	if !st.any || f.SenderSeq > st.highest {
		st.highest, st.any = f.SenderSeq, true
	}
	if len(st.digests) > maxSeqWindow+MaxSeqAhead {
		for seq := range st.digests {
			if seq+maxSeqWindow <= st.highest {
				delete(st.digests, seq)
			}
		}
	}
}

// Forget drops the state of one (session, sender) stream.
func (t *SeqTracker) Forget(sessionID, senderID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.streams, [2]string{sessionID, senderID})
}

type seqStreamJSON struct {
	SessionID string            `json:"session_id"`
	SenderID  string            `json:"sender_id"`
	Highest   uint64            `json:"highest"`
	Digests   map[uint64]string `json:"digests"`
}

// MarshalJSON saves the tracker, so that a restarted receiver keeps
// applying the sender_seq rules (a fresh tracker would refuse streams that
// are already more than MaxSeqAhead along). It holds no secrets.
func (t *SeqTracker) MarshalJSON() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]seqStreamJSON, 0, len(t.streams))
	for k, st := range t.streams {
		if st.any {
			out = append(out, seqStreamJSON{SessionID: k[0], SenderID: k[1], Highest: st.highest, Digests: st.digests})
		}
	}
	slices.SortFunc(out, func(a, b seqStreamJSON) int {
		return strings.Compare(a.SessionID+"\x00"+a.SenderID, b.SessionID+"\x00"+b.SenderID)
	})
	return json.Marshal(out)
}

// UnmarshalJSON restores a tracker saved by MarshalJSON.
func (t *SeqTracker) UnmarshalJSON(b []byte) error {
	var in []seqStreamJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return errInput("invalid sender_seq tracker state")
	}
	streams := make(map[[2]string]*seqStream, len(in))
	for _, s := range in {
		if len(s.Digests) > maxSeqWindow+MaxSeqAhead+1 {
			return errInput("sender_seq tracker state too large")
		}
		d := make(map[uint64]string, len(s.Digests))
		for k, v := range s.Digests {
			d[k] = v
		}
		streams[[2]string{s.SessionID, s.SenderID}] = &seqStream{highest: s.Highest, any: true, digests: d}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams = streams
	return nil
}
