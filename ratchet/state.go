package ratchet

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/talosgo/talos/contracts"
)

// A Sealer encrypts and authenticates state at rest. *identity.Keyring
// satisfies it (its envelope is versioned and names the key that sealed
// it, so blobs sealed under an older key still open after the primary key
// changes). To rotate, reseal: UnmarshalSealed, then MarshalSealed under the
// new primary key. Keyring.Rewrap does not apply directly: the aad that
// MarshalSealed binds is prefixed with a private domain string.
type Sealer interface {
	// Seal encrypts plaintext bound to aad.
	Seal(plaintext, aad []byte) ([]byte, error)
	// Open reverses Seal; it fails unless aad is the one used to seal.
	Open(sealed, aad []byte) ([]byte, error)
}

// Serialized state (library-private; always stored sealed), version 1:
//
//	'T' 'R' 0x01 flags
//	dhs.priv dhs.pub dhr prevDHr rk cks ckr   7 × 32 bytes
//	ns nr pn                          3 × uint64 big-endian
//	count                             uint32 big-endian
//	count × (dh 32 ‖ n uint32 ‖ mk 32)
//
// Version 2 is written for header-encrypted sessions only (flag bit 4 set)
// and adds hks hkr nhks nhkr (4 × 32 bytes) after ckr; a skipped key's dh
// then holds its chain's header key. Both versions are read; version 1
// never has header-encryption flags.
const (
	stateVersion    = 1
	stateVersionHE  = 2
	stateHeaderSize = 4 + 7*32 + 3*8 + 4
	heKeysSize      = 4 * 32
	skippedSize     = 32 + 4 + 32
)

// State AAD prefixes bind sealed blobs to what they hold.
const (
	sealDomainState  = "talos.ratchet.state.v1\x00"
	sealDomainPrekey = "talos.ratchet.prekey.v1\x00"
)

func (s *Session) appendState(dst []byte) []byte {
	st := &s.st
	v := byte(stateVersion)
	if st.flags&flagHE != 0 {
		v = stateVersionHE
	}
	dst = append(dst, 'T', 'R', v, st.flags)
	for _, k := range [...]*[32]byte{&st.dhs.priv, &st.dhs.pub, &st.dhr, &st.prevDHr, &st.rk, &st.cks, &st.ckr} {
		dst = append(dst, k[:]...)
	}
	if v == stateVersionHE {
		for _, k := range [...]*[32]byte{&st.hks, &st.hkr, &st.nhks, &st.nhkr} {
			dst = append(dst, k[:]...)
		}
	}
	dst = binary.BigEndian.AppendUint64(dst, st.ns)
	dst = binary.BigEndian.AppendUint64(dst, st.nr)
	dst = binary.BigEndian.AppendUint64(dst, st.pn)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		dst = append(dst, k.dh[:]...)
		dst = binary.BigEndian.AppendUint32(dst, k.n)
		dst = append(dst, k.mk[:]...)
	}
	return dst
}

func errState(msg string) error {
	return contracts.New(contracts.CodeCryptoError, "ratchet: invalid session state: "+msg)
}

func parseState(b []byte, cfg Config) (*Session, error) {
	if len(b) < stateHeaderSize || len(b) > maxStateSize {
		return nil, errState("bad length")
	}
	if b[0] != 'T' || b[1] != 'R' {
		return nil, errState("bad magic")
	}
	if b[2] != stateVersion && b[2] != stateVersionHE {
		return nil, errState("unsupported version")
	}
	s := newSession(cfg)
	st := &s.st
	st.flags = b[3]
	if st.flags&^flagsMask != 0 {
		return nil, errState("unknown flags")
	}
	he := b[2] == stateVersionHE
	if he != (st.flags&flagHE != 0) || !he && st.flags&(flagHKs|flagHKr) != 0 {
		return nil, errState("flags do not match the version")
	}
	if he && len(b) < stateHeaderSize+heKeysSize {
		return nil, errState("bad length")
	}
	p := b[4:]
	keys := []*[32]byte{&st.dhs.priv, &st.dhs.pub, &st.dhr, &st.prevDHr, &st.rk, &st.cks, &st.ckr}
	if he {
		keys = append(keys, &st.hks, &st.hkr, &st.nhks, &st.nhkr)
	}
	for _, k := range keys {
		copy(k[:], p[:32])
		p = p[32:]
	}
	st.ns = binary.BigEndian.Uint64(p)
	st.nr = binary.BigEndian.Uint64(p[8:])
	st.pn = binary.BigEndian.Uint64(p[16:])
	n := binary.BigEndian.Uint32(p[24:])
	p = p[28:]
	if st.ns > maxCounter+1 || st.nr > maxCounter+1 || st.pn > maxCounter {
		return nil, errState("counter out of range")
	}
	if uint64(len(p)) != uint64(n)*skippedSize {
		return nil, errState("bad skipped-key count")
	}
	if publicKey(&st.dhs.priv) != st.dhs.pub {
		return nil, errState("ratchet key pair mismatch")
	}
	if n > 0 {
		s.skipped = make([]skippedKey, n)
	}
	for i := range s.skipped {
		k := &s.skipped[i]
		copy(k.dh[:], p[:32])
		k.n = binary.BigEndian.Uint32(p[32:])
		copy(k.mk[:], p[36:68])
		p = p[skippedSize:]
	}
	s.boundSkipped()
	return s, nil
}

// MarshalSealed serializes the session state (versioned) and seals it
// with sealer, bound to aad (for example the session and owner ids, so a
// blob cannot be swapped for another session's). The state holds every
// secret of the session; it is never exposed unsealed.
func (s *Session) MarshalSealed(sealer Sealer, aad []byte) ([]byte, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt := s.appendState(make([]byte, 0, stateHeaderSize+heKeysSize+len(s.skipped)*skippedSize))
	defer clear(pt)
	return sealer.Seal(pt, append([]byte(sealDomainState), aad...))
}

// UnmarshalSealed opens a state sealed by MarshalSealed with the same aad
// and returns the session, configured by cfg. It fails with
// TALOS_CRYPTO_ERROR if the blob does not open or its content is invalid.
func UnmarshalSealed(sealer Sealer, sealed, aad []byte, cfg Config) (*Session, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt, err := sealer.Open(sealed, append([]byte(sealDomainState), aad...))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: sealed session state does not open", err)
	}
	defer clear(pt)
	return parseState(pt, cfg)
}

// Sealed prekey formats (library-private):
//
//	v1: 'T' 'P' 0x01 identity(32) priv(32) sig(64)
//	v2: 'T' 'P' 0x02 identity(32) priv(32) sig(64) kemSeed(64) pqSig(64)
//
// v2 is written only for hybrid prekeys; both are read.
const (
	prekeyV1Size = 3 + 32 + 32 + 64
	prekeyV2Size = prekeyV1Size + 64 + 64
)

// MarshalSealed seals the prekey (its private half included) for storage.
func (p *Prekey) MarshalSealed(sealer Sealer, aad []byte) ([]byte, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt := make([]byte, 0, prekeyV2Size)
	pt = append(pt, 'T', 'P', 1)
	if p.kem != nil {
		pt[2] = 2
	}
	pt = append(pt, p.identity[:]...)
	pt = append(pt, p.priv[:]...)
	pt = append(pt, p.sig[:]...)
	if p.kem != nil {
		pt = append(pt, p.kemSeed[:]...)
		pt = append(pt, p.pqSig[:]...)
	}
	defer clear(pt)
	return sealer.Seal(pt, append([]byte(sealDomainPrekey), aad...))
}

// UnmarshalPrekeySealed opens a prekey sealed by Prekey.MarshalSealed (any
// version). It checks that the stored signatures still verify.
func UnmarshalPrekeySealed(sealer Sealer, sealed, aad []byte) (*Prekey, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt, err := sealer.Open(sealed, append([]byte(sealDomainPrekey), aad...))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: sealed prekey does not open", err)
	}
	defer clear(pt)
	return parsePrekey(pt)
}

func parsePrekey(pt []byte) (*Prekey, error) {
	if len(pt) < 3 || pt[0] != 'T' || pt[1] != 'P' ||
		!(pt[2] == 1 && len(pt) == prekeyV1Size || pt[2] == 2 && len(pt) == prekeyV2Size) {
		return nil, errState("bad prekey encoding")
	}
	p := newPrekey()
	copy(p.identity[:], pt[3:35])
	copy(p.priv[:], pt[35:67])
	copy(p.sig[:], pt[67:131])
	p.pub = publicKey(&p.priv)
	if pt[2] == 2 {
		if err := p.setKEM(pt[131:195]); err != nil {
			return nil, errState("bad ML-KEM seed")
		}
		copy(p.pqSig[:], pt[195:])
		if !pqCommitted(&p.pub) {
			return nil, errState("hybrid prekey is not committed")
		}
	}
	if err := p.Bundle().Verify(); err != nil {
		return nil, errState("prekey signature does not verify")
	}
	return p, nil
}

// StateBlob returns the A2A session request fields for a sealed state
// (MarshalSealed output): ratchet_state_blob_b64u = b64u(sealed) and
// ratchet_state_digest = hex(sha256(sealed)). The gateway stores the blob
// as opaque bytes; since it is sealed under the client's key, the gateway
// learns nothing from it (the reference SDK uploads the state in clear).
func StateBlob(sealed []byte) (blobB64U, digestHex string) {
	sum := sha256.Sum256(sealed)
	return contracts.EncodeBase64URL(sealed), hex.EncodeToString(sum[:])
}
