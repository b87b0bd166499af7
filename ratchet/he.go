package ratchet

import (
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/talosgo/talos/contracts"
)

// Header encryption: the Double Ratchet's header-encrypted variant
// (Signal's Double Ratchet specification, section 4), an opt-in extension
// negotiated in the hybrid setup data (Config.HeaderEncryption). A relay
// sees neither message counters nor ratchet keys: the header (ratchet key,
// n, pn) is sealed under a header key that only changes at DH steps.
//
// Keys (HKDF-SHA256, empty salt; see DESIGN-NOTES, ratchet):
//
//	SK = RK0 of the hybrid setup (its transcript marks header encryption)
//	(HKa, NHKb)     = HKDF(SK, "talos-ratchet-he-init-v1", 64)
//	KDF_RK_HE(rk, dh) = HKDF(rk ‖ dh, "talos-double-ratchet-root-he-v1", 96)
//	                  → (rk, ck, next header key)
//	KDF_CK is the contract's.
//
// The initiator starts with HKs = HKa and NHKr = NHKb; the responder with
// HKr = HKa, NHKs = NHKb and the first half of a DH step on the setup's
// ephemeral key, as in the specification.
//
// Wire (canonical JSON, library-private; never sent to peers that did not
// negotiate it): {"ciphertext":b64u(ct‖tag),"header":b64u(eh),"nonce":b64u(12)}
// where eh = nonce_h (12) ‖ ChaCha20-Poly1305(HKs, nonce_h, dh ‖ n ‖ pn,
// "talos.ratchet.he.v1 header") with n, pn uint32 big-endian (68 bytes in
// all), and the message AEAD's associated data is
// "talos.ratchet.he.v1\x00" ‖ eh.
const (
	infoHEInit  = "talos-ratchet-he-init-v1"
	infoRootHE  = "talos-double-ratchet-root-he-v1"
	heHeaderAAD = "talos.ratchet.he.v1 header"
	heMsgAAD    = "talos.ratchet.he.v1\x00"

	heHeaderPlain = 32 + 4 + 4
	heHeaderSize  = nonceSize + heHeaderPlain + tagSize // 68
)

// kdfRKHE is KDF_RK_HE: HKDF(ikm = rk ‖ dh, salt = ∅, info =
// "talos-double-ratchet-root-he-v1", L = 96) split into (rk, ck, nhk).
func kdfRKHE(rk, dh *[32]byte) (newRK, ck, nhk [32]byte) {
	prk := hkdfExtract(rk[:], dh[:])
	var infoBuf [32]byte
	n := copy(infoBuf[:], infoRootHE)
	newRK = hmacSHA256(prk[:], nil, infoBuf[:n], 1, true)
	ck = hmacSHA256(prk[:], newRK[:], infoBuf[:n], 2, true)
	nhk = hmacSHA256(prk[:], ck[:], infoBuf[:n], 3, true)
	return newRK, ck, nhk
}

// heInit derives the two initial header keys from the setup's root key.
func heInit(sk *[32]byte) (hka, nhkb [32]byte) {
	prk := hkdfExtract(sk[:], nil)
	return hkdfExpand2(&prk, infoHEInit)
}

// initInitiatorHE is RatchetInitAliceHE with the setup's ephemeral key as
// the first ratchet key.
func (st *core) initInitiatorHE(sk, dh0 *[32]byte, eph keyPair, spk *[32]byte) {
	hka, nhkb := heInit(sk)
	rk, cks, nhks := kdfRKHE(sk, dh0)
	*st = core{
		flags: flagDHr | flagCKs | flagHE | flagHKs,
		dhs:   eph, dhr: *spk, rk: rk, cks: cks,
		hks: hka, nhks: nhks, nhkr: nhkb,
	}
}

// initResponderHE is RatchetInitBobHE followed by the receiving half of the
// DH step on the setup's ephemeral key (which the setup data carries), so
// the responder can send first.
func (st *core) initResponderHE(sk, dh0 *[32]byte, spk keyPair, eph *[32]byte) {
	hka, nhkb := heInit(sk)
	rk, ckr, nhkr := kdfRKHE(sk, dh0)
	*st = core{
		flags: flagDHr | flagCKr | flagHE | flagHKs | flagHKr,
		dhs:   spk, dhr: *eph, rk: rk, ckr: ckr,
		hks: nhkb, hkr: hka, nhkr: nhkr,
	}
}

// sealHE encrypts plaintext in a header-encrypted session.
func (s *Session) sealHE(plaintext []byte) ([]byte, error) {
	st := s.st
	if st.flags&flagCKs == 0 {
		kp, err := s.newKeyPair()
		if err != nil {
			return nil, err
		}
		d, err := dh(&kp.priv, &st.dhr)
		if err != nil {
			return nil, err
		}
		st.pn, st.ns, st.dhs = st.ns, 0, kp
		st.rk, st.cks, st.nhks = kdfRKHE(&st.rk, &d)
		st.flags |= flagCKs
	}
	if st.flags&flagHKs == 0 {
		return nil, errInput("session has no header key yet")
	}
	if st.ns > maxCounter || st.pn > maxCounter {
		return nil, errInput("sending chain exhausted")
	}
	mk, next := kdfCK(&st.cks)
	st.cks = next
	var nonces [2 * nonceSize]byte
	if _, err := io.ReadFull(s.cfg.Rand, nonces[:]); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	var eh [heHeaderSize]byte
	copy(eh[:nonceSize], nonces[:nonceSize])
	var hp [heHeaderPlain]byte
	h := Header{DH: st.dhs.pub, N: uint32(st.ns), PN: uint32(st.pn)}
	putHEHeader(&hp, &h)
	hAEAD, err := chacha20poly1305.New(st.hks[:])
	if err != nil {
		panic("ratchet: " + err.Error())
	}
	hAEAD.Seal(eh[nonceSize:nonceSize], eh[:nonceSize], hp[:], []byte(heHeaderAAD))
	aad := append(append(s.aadBuf[:0], heMsgAAD...), eh[:]...)
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		panic("ratchet: " + err.Error())
	}
	nonce := nonces[nonceSize:]
	ct := aead.Seal(make([]byte, 0, len(plaintext)+tagSize), nonce, plaintext, aad)
	clear(mk[:])
	out := make([]byte, 0, len(`{"ciphertext":"","header":"","nonce":""}`)+b64.EncodedLen(len(ct))+b64.EncodedLen(heHeaderSize)+b64.EncodedLen(nonceSize))
	out = appendHEWire(out, eh[:], nonce, ct)
	st.ns++
	s.st = st
	return out, nil
}

func putHEHeader(hp *[heHeaderPlain]byte, h *Header) {
	copy(hp[:32], h.DH[:])
	hp[32], hp[33], hp[34], hp[35] = byte(h.N>>24), byte(h.N>>16), byte(h.N>>8), byte(h.N)
	hp[36], hp[37], hp[38], hp[39] = byte(h.PN>>24), byte(h.PN>>16), byte(h.PN>>8), byte(h.PN)
}

func getHEHeader(hp []byte, h *Header) {
	copy(h.DH[:], hp[:32])
	h.N = uint32(hp[32])<<24 | uint32(hp[33])<<16 | uint32(hp[34])<<8 | uint32(hp[35])
	h.PN = uint32(hp[36])<<24 | uint32(hp[37])<<16 | uint32(hp[38])<<8 | uint32(hp[39])
}

func appendHEWire(dst, eh, nonce, ct []byte) []byte {
	dst = append(dst, `{"ciphertext":"`...)
	dst = b64.AppendEncode(dst, ct)
	dst = append(dst, `","header":"`...)
	dst = b64.AppendEncode(dst, eh)
	dst = append(dst, `","nonce":"`...)
	dst = b64.AppendEncode(dst, nonce)
	return append(dst, `"}`...)
}

// heParsed is a parsed header-encrypted envelope.
type heParsed struct {
	eh    [heHeaderSize]byte
	nonce [nonceSize]byte
	ct    []byte // base64url text, a sub-slice of the input
}

// parseHEWire parses the canonical header-encrypted envelope. Errors are
// RATCHET_INVALID_HEADER.
func parseHEWire(wire []byte, p *heParsed) error {
	if len(wire) > maxWireSize {
		return errHeader("envelope too large")
	}
	s := scanner{b: wire, ok: true}
	s.lit(`{"ciphertext":"`)
	p.ct = s.str()
	s.lit(`","header":"`)
	eh := s.str()
	s.lit(`","nonce":"`)
	nonce := s.str()
	s.lit(`"}`)
	if !s.ok || s.pos != len(wire) {
		return errHeader("malformed or non-canonical envelope")
	}
	if len(eh) != b64.EncodedLen(heHeaderSize) || len(nonce) != b64.EncodedLen(nonceSize) {
		return errHeader("encrypted header or nonce has the wrong length")
	}
	if n, err := b64.Decode(p.eh[:], eh); err != nil || n != heHeaderSize {
		return errHeader("invalid encrypted header encoding")
	}
	if n, err := b64.Decode(p.nonce[:], nonce); err != nil || n != nonceSize {
		return errHeader("invalid nonce encoding")
	}
	ctLen, err := decodedLen(p.ct)
	if err != nil || ctLen < tagSize {
		return errHeader("invalid ciphertext")
	}
	return nil
}

// openHeader decrypts an encrypted header with hk.
func openHeader(hk *[32]byte, eh *[heHeaderSize]byte, h *Header) bool {
	a, err := chacha20poly1305.New(hk[:])
	if err != nil {
		panic("ratchet: " + err.Error())
	}
	var hp [heHeaderPlain]byte
	if _, err := a.Open(hp[:0], eh[:nonceSize], eh[nonceSize:], []byte(heHeaderAAD)); err != nil {
		return false
	}
	getHEHeader(hp[:], h)
	return true
}

// decryptHE is Decrypt for a header-encrypted session; transactional like
// the plain path.
func (s *Session) decryptHE(wire []byte) ([]byte, error) {
	var p heParsed
	if err := parseHEWire(wire, &p); err != nil {
		return nil, err
	}
	ct := make([]byte, b64.DecodedLen(len(p.ct)))
	if _, err := b64.Decode(ct, p.ct); err != nil {
		return nil, errHeader("invalid ciphertext encoding")
	}
	aad := append(append(s.aadBuf[:0], heMsgAAD...), p.eh[:]...)
	var h Header
	// Skipped keys: one header trial per kept chain (at most
	// MaxReceivingChains), whose keys are contiguous in the store.
	for i := 0; i < len(s.skipped); i++ {
		if i > 0 && s.skipped[i].dh == s.skipped[i-1].dh {
			continue
		}
		if !openHeader(&s.skipped[i].dh, &p.eh, &h) {
			continue
		}
		for j := i; j < len(s.skipped) && s.skipped[j].dh == s.skipped[i].dh; j++ {
			if s.skipped[j].n == h.N {
				pt, err := aeadOpen(&s.skipped[j].mk, p.nonce[:], ct, aad)
				if err != nil {
					return nil, err
				}
				s.removeSkipped(j)
				return pt, nil
			}
		}
		// The header opened under this chain's key but it is not a chain we
		// still expect messages from, unless it is the current one.
		if s.st.flags&flagHKr == 0 || s.skipped[i].dh != s.st.hkr {
			return nil, errAuth()
		}
		break
	}
	st := s.st
	step := false
	switch {
	case st.flags&flagHKr != 0 && openHeader(&st.hkr, &p.eh, &h):
	case openHeader(&st.nhkr, &p.eh, &h):
		step = true
	default:
		return nil, errAuth()
	}
	var staged []skippedKey
	var err error
	if step {
		if st.flags&flagCKr != 0 && uint64(h.PN) > st.nr && uint64(h.PN)-st.nr+uint64(h.N) > MaxForwardJump {
			return nil, errMaxSkip()
		}
		if staged, err = st.skip(staged, uint64(h.PN)); err != nil {
			return nil, err
		}
		d, err := dh(&st.dhs.priv, &h.DH)
		if err != nil {
			return nil, err
		}
		st.pn, st.ns, st.nr, st.dhr = st.ns, 0, 0, h.DH
		st.hks, st.hkr = st.nhks, st.nhkr
		st.rk, st.ckr, st.nhkr = kdfRKHE(&st.rk, &d)
		st.flags |= flagCKr | flagHKs | flagHKr
		st.flags &^= flagCKs
	} else if uint64(h.N) < st.nr {
		return nil, errAuth()
	}
	if staged, err = st.skip(staged, uint64(h.N)); err != nil {
		return nil, err
	}
	mk, next := kdfCK(&st.ckr)
	st.ckr = next
	st.nr = uint64(h.N) + 1
	pt, err := aeadOpen(&mk, p.nonce[:], ct, aad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	if step {
		kp, err := s.newKeyPair()
		if err != nil {
			clear(pt)
			return nil, err
		}
		d, err := dh(&kp.priv, &st.dhr)
		if err != nil {
			clear(pt)
			return nil, err
		}
		st.dhs = kp
		st.rk, st.cks, st.nhks = kdfRKHE(&st.rk, &d)
		st.flags |= flagCKs
	}
	s.st = st
	s.addSkipped(staged)
	return pt, nil
}

// HeaderEncrypted reports whether the session uses the header-encryption
// extension (its messages are not contract envelopes).
func (s *Session) HeaderEncrypted() bool { return s.st.flags&flagHE != 0 }
