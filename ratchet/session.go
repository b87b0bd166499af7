package ratchet

import (
	"crypto/rand"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/talosgo/talos/contracts"
)

// Config tunes a Session. Its zero value is ready to use.
type Config struct {
	// Rand is the source of ratchet key pairs and AEAD nonces. If nil,
	// crypto/rand.Reader is used. It exists so that tests can replay the
	// contract traces byte for byte; production code should leave it nil,
	// since a predictable Rand destroys every security property.
	Rand io.Reader

	// MaxSkippedKeys bounds the total number of stored skipped-message keys
	// across all chains. When full, the oldest keys are evicted, so very
	// late messages become undecryptable rather than new ones being refused.
	// If zero, DefaultMaxSkippedKeys is used. Independently, one header may
	// never skip more than MaxSkip keys on one chain.
	MaxSkippedKeys int

	// HeaderEncryption selects the header-encryption extension (the
	// Double Ratchet's header-encrypted variant): relays then see no
	// message counters or ratchet keys. It is negotiated in the hybrid
	// setup only: on the initiator, InitiateHybrid requests it (and fails
	// with ErrDowngrade for a bundle without the hybrid extension); on the
	// responder, AcceptHybrid requires it (ErrDowngrade for setup data that
	// does not request it). A responder with false follows the setup data.
	// Initiate and Accept (the contract setup) refuse it. Sessions that use
	// it exchange library-private envelopes, never contract ones.
	HeaderEncryption bool
}

func (c Config) withDefaults() Config {
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.MaxSkippedKeys <= 0 {
		c.MaxSkippedKeys = DefaultMaxSkippedKeys
	}
	return c
}

type keyPair struct {
	priv, pub [32]byte
}

// state flags
const (
	flagDHr     = 1 << iota // dhr is set
	flagCKs                 // sending chain exists
	flagCKr                 // receiving chain exists
	flagPending             // responder waiting for the first message
	flagHE                  // header encryption
	flagHKs                 // sending header key set
	flagHKr                 // receiving header key set
	flagsMask   = flagDHr | flagCKs | flagCKr | flagPending | flagHE | flagHKs | flagHKr
)

// core is the fixed-size part of the ratchet state. Copying it is cheap,
// which is what makes Decrypt transactional.
type core struct {
	flags      uint8
	dhs        keyPair
	dhr        [32]byte
	prevDHr    [32]byte // the remote ratchet key before dhr (zero if none)
	rk         [32]byte
	cks, ckr   [32]byte
	ns, nr, pn uint64

	// header encryption only (flagHE): header keys
	hks, hkr, nhks, nhkr [32]byte
}

type skippedKey struct {
	dh [32]byte
	n  uint32
	mk [32]byte
}

// A Session is one side of a Double Ratchet conversation (contract v1.1.0).
//
// A Session is not safe for concurrent use: callers serialize Encrypt,
// Decrypt and Marshal calls (a Channel does this for its session).
type Session struct {
	_ [0]func() // not comparable
	*sessionRef
}

// sessionRef puts the session's keys two pointers away from Session, so fmt
// prints an address where it would otherwise print them; see hiddenNote.
type sessionRef struct{ *sessionState }

type sessionState struct {
	cfg     Config
	st      core
	skipped []skippedKey // oldest first

	// scratch space, so that the hot paths do not allocate for values
	// handed to interfaces (Rand, cipher.AEAD)
	nonceBuf [nonceSize]byte
	aadBuf   [96]byte
}

func newSession(cfg Config) *Session {
	return &Session{sessionRef: &sessionRef{&sessionState{cfg: cfg.withDefaults()}}}
}

func (s *Session) newKeyPair() (keyPair, error) {
	var kp keyPair
	if _, err := io.ReadFull(s.cfg.Rand, kp.priv[:]); err != nil {
		return kp, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	kp.pub = publicKey(&kp.priv)
	return kp, nil
}

// Initiate starts a session with the owner of bundle b (the contract's
// X3DH-lite: one DH of a fresh ephemeral key with the signed prekey). It
// verifies the bundle first and returns ErrInvalidSignature when the prekey
// signature does not verify, or ErrInvalidDHKey for a low-order prekey.
//
// The bundle's signature only proves that its identity key signed its
// prekey: compare b.DID() with the responder you mean to reach before
// calling Initiate. The session can Encrypt immediately. Contract-only
// setup does not authenticate the initiator to the responder; see
// InitiateAuthenticated.
func Initiate(b PrekeyBundle, cfg Config) (*Session, error) {
	if cfg.HeaderEncryption {
		return nil, errInput("header encryption needs the hybrid setup (InitiateHybrid)")
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	s := newSession(cfg)
	ek, err := s.newKeyPair()
	if err != nil {
		return nil, err
	}
	if err := s.initInitiator(ek, &b.SignedPrekey); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) initInitiator(ek keyPair, spk *[32]byte) error {
	dh0, err := dh(&ek.priv, spk)
	if err != nil {
		return err
	}
	rk0 := x3dhInit(&dh0)
	rk, cks := kdfRK(&rk0, &dh0)
	s.st = core{flags: flagDHr | flagCKs, dhs: ek, dhr: *spk, rk: rk, cks: cks}
	return nil
}

// Accept prepares the responder's side of a session for prekey p. The
// session is initialized by the first message it decrypts, whose header
// carries the initiator's ephemeral key; until then it cannot Encrypt.
//
// Any holder of p's bundle can be the initiator: contract-only setup does
// not authenticate the initiator. Use AcceptAuthenticated to require a
// signed setup proof from an expected identity.
func Accept(p *Prekey, cfg Config) (*Session, error) {
	if p == nil {
		return nil, errInput("nil prekey")
	}
	if cfg.HeaderEncryption {
		return nil, errInput("header encryption needs the hybrid setup (AcceptHybrid)")
	}
	s := newSession(cfg)
	s.st = core{flags: flagPending, dhs: keyPair{priv: p.priv, pub: p.pub}}
	return s, nil
}

// initResponder initializes a pending responder from the initiator's
// ephemeral key.
func initResponder(st *core, ek *[32]byte) error {
	dh0, err := dh(&st.dhs.priv, ek)
	if err != nil {
		return err
	}
	rk0 := x3dhInit(&dh0)
	st.rk, st.ckr = kdfRK(&rk0, &dh0)
	st.dhr = *ek
	st.flags = flagDHr | flagCKr
	st.nr, st.ns, st.pn = 0, 0, 0
	return nil
}

// Encrypt encrypts plaintext and returns the canonical wire envelope
// (contract double_ratchet_message v1.1.0). It fails, changing nothing,
// when the session cannot send yet (a responder before its first message),
// when the sending chain is exhausted (2^32 messages) or when Rand fails.
// A header-encrypted session (HeaderEncrypted) returns its own envelope
// instead, whose header is sealed.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) {
	return s.seal(plaintext, nil)
}

// seal encrypts plaintext. aadFor, when non-nil, replaces the canonical
// header as the associated data (legacy v1.0 traces in tests).
func (s *Session) seal(plaintext []byte, aadFor func(Header) []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, errInput("plaintext too large")
	}
	if s.st.flags&flagHE != 0 {
		if aadFor != nil {
			return nil, errInput("legacy framing is not available with header encryption")
		}
		return s.sealHE(plaintext)
	}
	st := s.st
	if st.flags&flagCKs == 0 {
		if st.flags&flagDHr == 0 {
			return nil, errInput("session cannot send before it has received the initiator's first message")
		}
		kp, err := s.newKeyPair()
		if err != nil {
			return nil, err
		}
		d, err := dh(&kp.priv, &st.dhr)
		if err != nil {
			return nil, err
		}
		st.pn, st.ns, st.dhs = st.ns, 0, kp
		st.rk, st.cks = kdfRK(&st.rk, &d)
		st.flags |= flagCKs
	}
	if st.ns > maxCounter || st.pn > maxCounter {
		return nil, errInput("sending chain exhausted")
	}
	mk, next := kdfCK(&st.cks)
	st.cks = next
	h := Header{DH: st.dhs.pub, N: uint32(st.ns), PN: uint32(st.pn)}
	nonce := s.nonceBuf[:]
	if _, err := io.ReadFull(s.cfg.Rand, nonce); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	var aad []byte
	if aadFor != nil {
		aad = aadFor(h)
	} else {
		aad = h.AppendCanonical(s.aadBuf[:0])
	}
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		panic("ratchet: " + err.Error())
	}
	ct := aead.Seal(make([]byte, 0, len(plaintext)+tagSize), nonce, plaintext, aad)
	out := appendWire(make([]byte, 0, wireLen(&h, len(ct))), &h, nonce, ct)
	clear(mk[:])
	st.ns++
	s.st = st
	return out, nil
}

// Decrypt authenticates and decrypts a wire envelope. It is transactional:
// on any error the session is exactly as before, so forged, corrupted or
// replayed messages cannot desynchronize or damage it.
//
// Errors are *contracts.Error: ErrInvalidHeader for an envelope that does
// not parse, ErrMaxSkipExceeded when the header would skip more than
// MaxSkip keys on one chain, ErrInvalidDHKey for a low-order ratchet key,
// and ErrAuthFailed (no further detail) for everything that fails to
// authenticate, including a message that was already decrypted. A
// header-encrypted session reads only its own envelopes; a header that
// opens under none of its header keys is ErrAuthFailed.
func (s *Session) Decrypt(wire []byte) ([]byte, error) {
	pt, err := s.decrypt(wire)
	if err != nil {
		return nil, countFailure(err)
	}
	return pt, nil
}

func (s *Session) decrypt(wire []byte) ([]byte, error) {
	if s.st.flags&flagHE != 0 {
		return s.decryptHE(wire)
	}
	var p parsed
	if err := parseWire(wire, &p); err != nil {
		return nil, err
	}
	buf := make([]byte, p.ctBytesSize)
	if _, err := b64.Decode(buf, p.ct); err != nil {
		return nil, errHeader("invalid ciphertext encoding")
	}
	s.nonceBuf = p.nonceBytes
	return s.open(&p.hdr, s.nonceBuf[:], buf, p.aad)
}

// open decrypts ct (overwritten with the plaintext) on a copy of the state
// and commits the copy only when the AEAD opens.
func (s *Session) open(h *Header, nonce, ct, aad []byte) ([]byte, error) {
	if i := s.findSkipped(h); i >= 0 {
		pt, err := aeadOpen(&s.skipped[i].mk, nonce, ct, aad)
		if err != nil {
			return nil, err
		}
		s.removeSkipped(i)
		return pt, nil
	}
	st := s.st
	var staged []skippedKey
	var err error
	if st.flags&flagPending != 0 {
		if err := initResponder(&st, &h.DH); err != nil {
			return nil, err
		}
	}
	step := h.DH != st.dhr
	if step && st.isOldChain(&h.DH, s.skipped) {
		// A chain we already stepped past: its remaining keys, if any, are all
		// in the skipped store, which did not match. Reject before any DH work.
		return nil, errAuth()
	}
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
		if st.flags&flagCKr != 0 {
			st.prevDHr = st.dhr
		}
		st.pn, st.ns, st.nr, st.dhr = st.ns, 0, 0, h.DH
		st.rk, st.ckr = kdfRK(&st.rk, &d)
		st.flags |= flagCKr
		st.flags &^= flagCKs
	} else if uint64(h.N) < st.nr {
		return nil, errAuth() // already decrypted, or its key was evicted
	}
	if staged, err = st.skip(staged, uint64(h.N)); err != nil {
		return nil, err
	}
	mk, next := kdfCK(&st.ckr)
	st.ckr = next
	st.nr = uint64(h.N) + 1
	pt, err := aeadOpen(&mk, nonce, ct, aad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	if step {
		// The second half of the DH step only feeds our next sending chain,
		// so it runs after authentication: forgeries cost no key generation.
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
		st.rk, st.cks = kdfRK(&st.rk, &d)
		st.flags |= flagCKs
	}
	s.st = st
	s.addSkipped(staged)
	return pt, nil
}

func aeadOpen(mk *[32]byte, nonce, ct, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		panic("ratchet: " + err.Error())
	}
	pt, err := aead.Open(ct[:0], nonce, ct, aad)
	if err != nil {
		return nil, errAuth()
	}
	return pt, nil
}

// skip derives and stages the message keys of the current receiving chain
// up to (not including) until.
func (st *core) skip(staged []skippedKey, until uint64) ([]skippedKey, error) {
	if st.flags&flagCKr == 0 {
		return staged, nil
	}
	if until > st.nr+MaxSkip {
		return staged, errMaxSkip()
	}
	chain := st.dhr // a chain is named by its ratchet key, or its header key
	if st.flags&flagHE != 0 {
		chain = st.hkr
	}
	for st.nr < until {
		mk, next := kdfCK(&st.ckr)
		staged = append(staged, skippedKey{dh: chain, n: uint32(st.nr), mk: mk})
		st.ckr = next
		st.nr++
	}
	return staged, nil
}

// isOldChain reports whether dh is a remote ratchet key this session has
// already moved past: the previous one, or one that skipped keys belong to.
func (st *core) isOldChain(dh *[32]byte, skipped []skippedKey) bool {
	if st.prevDHr != ([32]byte{}) && *dh == st.prevDHr {
		return true
	}
	for i := range skipped {
		if skipped[i].dh == *dh {
			return true
		}
	}
	return false
}

func (s *Session) findSkipped(h *Header) int {
	for i := range s.skipped {
		if s.skipped[i].n == h.N && s.skipped[i].dh == h.DH {
			return i
		}
	}
	return -1
}

func (s *Session) removeSkipped(i int) {
	clear(s.skipped[i].mk[:])
	s.skipped = append(s.skipped[:i], s.skipped[i+1:]...)
}

// addSkipped appends staged keys and evicts the oldest beyond the bounds:
// MaxSkippedKeys keys and MaxReceivingChains chains.
func (s *Session) addSkipped(staged []skippedKey) {
	if len(staged) == 0 {
		return
	}
	s.skipped = append(s.skipped, staged...)
	clear(staged)
	s.boundSkipped()
}

// boundSkipped evicts the oldest skipped keys beyond MaxSkippedKeys, then
// whole chains, oldest first, beyond MaxReceivingChains. Keys are stored
// oldest first and each chain's keys are contiguous in arrival order, so a
// chain's age is the position of its first key.
func (s *Session) boundSkipped() {
	if over := len(s.skipped) - s.cfg.MaxSkippedKeys; over > 0 {
		s.dropSkipped(over)
	}
	chains, cut := 0, 0
	for i := len(s.skipped) - 1; i >= 0; i-- {
		if i == len(s.skipped)-1 || s.skipped[i].dh != s.skipped[i+1].dh {
			chains++
			if chains > MaxReceivingChains {
				cut = i + 1
				break
			}
		}
	}
	if cut > 0 {
		s.dropSkipped(cut)
	}
}

// dropSkipped wipes and removes the n oldest skipped keys.
func (s *Session) dropSkipped(n int) {
	for i := range n {
		clear(s.skipped[i].mk[:])
	}
	s.skipped = append(s.skipped[:0], s.skipped[n:]...)
}

// Destroy zeroes the session's keys and skipped-message keys. Afterwards
// Encrypt fails and Decrypt rejects everything. Call it when a conversation
// ends, after deleting its stored state.
func (s *Session) Destroy() {
	clear(s.skipped)
	s.skipped = nil
	s.st = core{}
	clear(s.aadBuf[:])
	clear(s.nonceBuf[:])
}

// canSend reports whether Encrypt can run: a responder set up by Accept
// cannot send before it has received the initiator's first message.
func (s *Session) canSend() bool { return s.st.flags&(flagCKs|flagDHr) != 0 }

// SkippedKeys reports how many skipped-message keys the session holds.
func (s *Session) SkippedKeys() int { return len(s.skipped) }

// sessionSnapshot is a copy of a Session's mutable state, for callers that
// must undo a successful Decrypt when what it carried is refused.
type sessionSnapshot struct {
	st      core
	skipped []skippedKey
}

func (s *Session) snapshot() sessionSnapshot {
	return sessionSnapshot{st: s.st, skipped: slices.Clone(s.skipped)}
}

// restore puts the snapshot back; p must not be used afterwards.
func (s *Session) restore(p *sessionSnapshot) {
	clear(s.skipped)
	s.st, s.skipped = p.st, p.skipped
	*p = sessionSnapshot{}
}

// wipe zeroes a snapshot that is not restored.
func (p *sessionSnapshot) wipe() {
	clear(p.skipped)
	*p = sessionSnapshot{}
}
