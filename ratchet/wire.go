package ratchet

import (
	"bytes"
	"encoding/base64"
	"strconv"
)

var b64 = base64.RawURLEncoding.Strict()

// A Header is the ratchet header carried in clear with every message: the
// sender's current ratchet public key, its message number in the current
// sending chain, and the length of its previous sending chain. Its
// canonical JSON, {"dh":…,"n":…,"pn":…}, is the AEAD associated data.
type Header struct {
	DH [32]byte // sender's ratchet public key (X25519)
	N  uint32   // message number in the sending chain
	PN uint32   // number of messages in the previous sending chain
}

// AppendCanonical appends the canonical JSON of h (RFC 8785, keys sorted
// dh, n, pn) to dst and returns the extended slice.
func (h *Header) AppendCanonical(dst []byte) []byte {
	dst = append(dst, `{"dh":"`...)
	dst = b64.AppendEncode(dst, h.DH[:])
	dst = append(dst, `","n":`...)
	dst = strconv.AppendUint(dst, uint64(h.N), 10)
	dst = append(dst, `,"pn":`...)
	dst = strconv.AppendUint(dst, uint64(h.PN), 10)
	return append(dst, '}')
}

// A Message is a parsed ratchet wire envelope (contract
// double_ratchet_message v1.1.0).
type Message struct {
	Header     Header
	Nonce      []byte // 12 bytes
	Ciphertext []byte // ChaCha20-Poly1305 ciphertext followed by its 16-byte tag
}

// AppendWire appends the canonical wire envelope of m,
// {"ciphertext":…,"header":{…},"nonce":…}, to dst.
func (m *Message) AppendWire(dst []byte) []byte {
	return appendWire(dst, &m.Header, m.Nonce, m.Ciphertext)
}

func appendWire(dst []byte, h *Header, nonce, ct []byte) []byte {
	dst = append(dst, `{"ciphertext":"`...)
	dst = b64.AppendEncode(dst, ct)
	dst = append(dst, `","header":`...)
	dst = h.AppendCanonical(dst)
	dst = append(dst, `,"nonce":"`...)
	dst = b64.AppendEncode(dst, nonce)
	return append(dst, `"}`...)
}

// wireLen returns the length of the wire envelope for a ciphertext of n bytes.
func wireLen(h *Header, n int) int {
	return len(`{"ciphertext":"","header":{"dh":"","n":,"pn":},"nonce":""}`) +
		b64.EncodedLen(n) + b64.EncodedLen(keySize) + b64.EncodedLen(nonceSize) +
		digits(h.N) + digits(h.PN)
}

func digits(v uint32) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// parsed holds the positions of a wire envelope's fields; it avoids
// allocating before the caller knows where the bytes go.
type parsed struct {
	hdr         Header
	aad         []byte // the canonical header, a sub-slice of the input
	ct, nonce   []byte // base64url text, sub-slices of the input
	nonceBytes  [nonceSize]byte
	ctBytesSize int
}

// scanner reads the exact canonical layout of the envelope.
type scanner struct {
	b   []byte
	pos int
	ok  bool
}

func (s *scanner) lit(l string) {
	if !s.ok || len(s.b)-s.pos < len(l) || string(s.b[s.pos:s.pos+len(l)]) != l {
		s.ok = false
		return
	}
	s.pos += len(l)
}

// str reads the text of a JSON string up to (not including) its closing
// quote. Only base64url alphabet characters are allowed in it: the strict
// decoder that the caller applies rejects everything else except CR and
// LF, which are checked here.
func (s *scanner) str() []byte {
	if !s.ok {
		return nil
	}
	rest := s.b[s.pos:]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		s.ok = false
		return nil
	}
	seg := rest[:q]
	if bytes.IndexByte(seg, '\n') >= 0 || bytes.IndexByte(seg, '\r') >= 0 {
		s.ok = false
		return nil
	}
	s.pos += q
	return seg
}

func (s *scanner) uint32() uint32 {
	if !s.ok {
		return 0
	}
	start := s.pos
	var v uint64
	for s.pos < len(s.b) && s.b[s.pos] >= '0' && s.b[s.pos] <= '9' {
		v = v*10 + uint64(s.b[s.pos]-'0')
		s.pos++
		if v > maxCounter {
			s.ok = false
			return 0
		}
	}
	n := s.pos - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		s.ok = false // empty or leading zero: not canonical
		return 0
	}
	return uint32(v)
}

// scanHeader reads a canonical header at s.pos.
func (s *scanner) header(h *Header) {
	s.lit(`{"dh":"`)
	dh := s.str()
	s.lit(`","n":`)
	h.N = s.uint32()
	s.lit(`,"pn":`)
	h.PN = s.uint32()
	s.lit(`}`)
	if !s.ok {
		return
	}
	if len(dh) != 43 {
		s.ok = false
		return
	}
	if n, err := b64.Decode(h.DH[:], dh); err != nil || n != keySize {
		s.ok = false
	}
}

// parseWire parses a canonical wire envelope without allocating.
func parseWire(wire []byte, p *parsed) error {
	if len(wire) > maxWireSize {
		return errHeader("envelope too large")
	}
	s := scanner{b: wire, ok: true}
	s.lit(`{"ciphertext":"`)
	p.ct = s.str()
	s.lit(`","header":`)
	hstart := s.pos
	s.header(&p.hdr)
	p.aad = wire[hstart:s.pos]
	s.lit(`,"nonce":"`)
	p.nonce = s.str()
	s.lit(`"}`)
	if !s.ok || s.pos != len(wire) {
		return errHeader("malformed or non-canonical envelope")
	}
	if len(p.nonce) != 16 {
		return errHeader("nonce must be 12 bytes")
	}
	if n, err := b64.Decode(p.nonceBytes[:], p.nonce); err != nil || n != nonceSize {
		return errHeader("invalid nonce encoding")
	}
	ctLen, err := decodedLen(p.ct)
	if err != nil {
		return errHeader("invalid ciphertext encoding")
	}
	if ctLen < tagSize {
		return errHeader("ciphertext shorter than the tag")
	}
	p.ctBytesSize = ctLen
	return nil
}

// decodedLen returns the decoded length of unpadded base64url text, or an
// error for an impossible length.
func decodedLen(s []byte) (int, error) {
	if len(s)%4 == 1 {
		return 0, errHeader("invalid base64url length")
	}
	return b64.DecodedLen(len(s)), nil
}

// ParseMessage parses a wire envelope. It accepts only the canonical form
// that AppendWire produces (RFC 8785 key order and number form, no
// whitespace, strict unpadded base64url), so one message has exactly one
// encoding. Errors are *contracts.Error with code RATCHET_INVALID_HEADER.
func ParseMessage(wire []byte) (*Message, error) {
	var p parsed
	if err := parseWire(wire, &p); err != nil {
		return nil, err
	}
	ct := make([]byte, p.ctBytesSize)
	if _, err := b64.Decode(ct, p.ct); err != nil {
		return nil, errHeader("invalid ciphertext encoding")
	}
	return &Message{Header: p.hdr, Nonce: append([]byte(nil), p.nonceBytes[:]...), Ciphertext: ct}, nil
}

// ParseHeader parses the canonical JSON of a header, as AppendCanonical
// writes it. Errors are *contracts.Error with code RATCHET_INVALID_HEADER.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) > 128 {
		return h, errHeader("header too large")
	}
	s := scanner{b: b, ok: true}
	s.header(&h)
	if !s.ok || s.pos != len(b) {
		return Header{}, errHeader("malformed or non-canonical header")
	}
	return h, nil
}
