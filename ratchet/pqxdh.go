package ratchet

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/json"
	"io"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// The hybrid (PQXDH-style) setup extension. See the package doc, section
// "Hybrid setup", and DESIGN-NOTES (ratchet) for the derivation.
const (
	// pqDomain names the extension: the PQ prekey signature's domain
	// separator and the setup message's type.
	pqDomain = "talos.ratchet.pqxdh.v1"
	// pqMarkerDomain prefixes the hash that marks a signed prekey as
	// committed to the extension.
	pqMarkerDomain = "talos.ratchet.pqxdh.v1.commit\n"
	// infoPQXDH is the HKDF info of the hybrid initial root key.
	infoPQXDH = "talos-pqxdh-init-v1 X25519 ML-KEM-768"
	// kemName is the one KEM of this version, part of the signed input.
	kemName = "ML-KEM-768"
)

// ErrDowngrade reports a setup that lost an extension the peer committed
// to: a prekey bundle whose signed prekey is committed to the hybrid setup
// but which carries no ML-KEM key (stripped on the way), or a setup that
// does not match what was negotiated. Its code is TALOS_PROTOCOL_MISMATCH.
var ErrDowngrade = contracts.NewSentinel(contracts.CodeProtocolMismatch, "")

func errDowngrade(msg string) error {
	return contracts.New(contracts.CodeProtocolMismatch, "ratchet: "+msg)
}

// pqCommitted reports whether the X25519 prekey spk is marked as committed
// to the hybrid extension: the first pqMarkerBits bits of
// SHA-256(pqMarkerDomain ‖ spk) are zero. The contract signature covers
// spk, so the mark is signed by the identity key and survives any
// stripping of the bundle's extension members.
func pqCommitted(spk *[32]byte) bool {
	h := sha256.New()
	h.Write([]byte(pqMarkerDomain))
	h.Write(spk[:])
	var sum [32]byte
	h.Sum(sum[:0])
	return pqMarkLeadingZeros(&sum)
}

func pqMarkLeadingZeros(sum *[32]byte) bool {
	full, rest := pqMarkerBits/8, pqMarkerBits%8
	for i := range full {
		if sum[i] != 0 {
			return false
		}
	}
	return rest == 0 || sum[full]>>(8-rest) == 0
}

// pqSigningInput is what the PQ prekey signature covers:
// "talos.ratchet.pqxdh.v1\n" ‖ "ML-KEM-768\n" ‖ signed prekey (32) ‖
// encapsulation key (1184).
func pqSigningInput(spk *[32]byte, ek []byte) []byte {
	b := make([]byte, 0, len(pqDomain)+len(kemName)+2+32+len(ek))
	b = append(b, pqDomain...)
	b = append(b, '\n')
	b = append(b, kemName...)
	b = append(b, '\n')
	b = append(b, spk[:]...)
	return append(b, ek...)
}

// GenerateHybridPrekey creates a signed prekey that also offers the hybrid
// setup: an X25519 key pair whose public half is committed to the extension
// (see HybridCommitted; about 2^12 candidates are drawn), an ML-KEM-768 key
// pair from a 64-byte seed, and two Ed25519 signatures by w: the contract's
// over the raw prekey, and the extension's over the prekey and the
// encapsulation key. Randomness is read from rnd (crypto/rand.Reader if
// nil).
//
// Its Bundle is a valid contract bundle with two more members, so peers
// without the extension run the contract setup with it (Accept), and peers
// with it run the hybrid one (InitiateHybrid, AcceptHybrid).
func GenerateHybridPrekey(w crypto.Signer, rnd io.Reader) (*Prekey, error) {
	pub, err := signerKey(w)
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = Config{}.withDefaults().Rand
	}
	p := newPrekey()
	for i := 0; ; i++ {
		if i == maxPQMarkerTries {
			return nil, contracts.New(contracts.CodeCryptoError, "ratchet: no committed prekey found (bad randomness source?)")
		}
		if _, err := io.ReadFull(rnd, p.priv[:]); err != nil {
			return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
		}
		p.pub = publicKey(&p.priv)
		if pqCommitted(&p.pub) {
			break
		}
	}
	var seed [mlkem.SeedSize]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
	}
	if err := p.setKEM(seed[:]); err != nil {
		return nil, err
	}
	clear(seed[:])
	sig, err := signWith(w, pub, p.pub[:])
	if err != nil {
		return nil, err
	}
	pqSig, err := signWith(w, pub, pqSigningInput(&p.pub, p.kem.EncapsulationKey().Bytes()))
	if err != nil {
		return nil, err
	}
	copy(p.identity[:], pub)
	copy(p.sig[:], sig)
	copy(p.pqSig[:], pqSig)
	return p, nil
}

func (p *Prekey) setKEM(seed []byte) error {
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "ratchet: ML-KEM key generation failed", err)
	}
	p.kem = dk
	p.kemHash = sha256.Sum256(dk.EncapsulationKey().Bytes())
	copy(p.kemSeed[:], seed)
	return nil
}

// Hybrid reports whether the prekey offers the hybrid setup.
func (p *Prekey) Hybrid() bool { return p.kem != nil }

// HybridCommitted reports whether the bundle's signed prekey is committed
// to the hybrid setup. Such a bundle must carry the extension's ML-KEM key;
// InitiateHybrid refuses it with ErrDowngrade when the key is missing. The
// mark is a property of the (signed) prekey bytes, so nobody but the
// identity key's owner can add or remove it. A prekey of a peer without the
// extension carries it by chance with probability 2^-12 (GeneratePrekey
// never makes such prekeys); Initiate, the contract setup, ignores it.
func (b PrekeyBundle) HybridCommitted() bool { return pqCommitted(&b.SignedPrekey) }

// verifyPQ checks the extension members of a bundle that has them.
func (b PrekeyBundle) verifyPQ() (*mlkem.EncapsulationKey768, error) {
	if len(b.PQPrekey) != mlkem.EncapsulationKeySize768 || len(b.PQPrekeySignature) != ed25519.SignatureSize {
		return nil, errSignature("malformed hybrid prekey")
	}
	if !identity.Verify(pqSigningInput(&b.SignedPrekey, b.PQPrekey), b.PQPrekeySignature, b.IdentityKey) {
		return nil, errSignature("hybrid prekey signature does not verify")
	}
	ek, err := mlkem.NewEncapsulationKey768(b.PQPrekey)
	if err != nil {
		return nil, errSignature("invalid ML-KEM-768 encapsulation key")
	}
	return ek, nil
}

// A HybridSetup is the initiator's setup data of the hybrid extension: its
// ephemeral key (also the first message's ratchet key), the prekey it used,
// and the ML-KEM-768 ciphertext. It travels beside the first message (for
// example in an A2A session-create request, like a SetupProof); the wire
// messages are the contract's.
type HybridSetup struct {
	EphemeralKey  [32]byte
	SignedPrekey  [32]byte
	KEMCiphertext []byte // mlkem.CiphertextSize768 bytes

	// HeaderEncryption requests the header-encryption extension (JSON
	// member "header_encryption": true, absent otherwise). It is bound
	// into the key derivation, so removing or adding it makes the first
	// message fail to decrypt.
	HeaderEncryption bool
}

// encapsulate is ML-KEM encapsulation; tests replace it to replay vectors.
var encapsulate = func(ek *mlkem.EncapsulationKey768) (ss, ct []byte, err error) {
	ss, ct = ek.Encapsulate()
	return ss, ct, nil
}

// InitiateHybrid starts a session with the owner of bundle b, negotiating
// the setup: when b offers the hybrid extension it runs the hybrid setup
// and returns its setup data, which the caller hands to the responder with
// the first message; when b is a plain contract bundle it runs the contract
// setup (exactly Initiate) and returns a nil setup. It returns
// ErrDowngrade for a bundle whose prekey is committed to the extension but
// which carries no ML-KEM key (someone stripped it), ErrInvalidSignature
// when either signature fails, ErrInvalidDHKey for a low-order prekey.
//
// As with Initiate, compare b.DID() with the responder you mean to reach.
func InitiateHybrid(b PrekeyBundle, cfg Config) (*Session, *HybridSetup, error) {
	if b.PQPrekey == nil && b.PQPrekeySignature == nil {
		if err := b.Verify(); err != nil {
			return nil, nil, err
		}
		if b.HybridCommitted() {
			return nil, nil, errDowngrade("prekey is committed to the hybrid setup but the bundle has no ML-KEM key")
		}
		if cfg.HeaderEncryption {
			return nil, nil, errDowngrade("header encryption needs a bundle with the hybrid extension")
		}
		s, err := Initiate(b, cfg)
		return s, nil, err
	}
	// Verify, with the extension checked once.
	c := b
	c.PQPrekey, c.PQPrekeySignature = nil, nil
	if err := c.Verify(); err != nil {
		return nil, nil, err
	}
	ek, err := b.verifyPQ()
	if err != nil {
		return nil, nil, err
	}
	s := newSession(cfg)
	eph, err := s.newKeyPair()
	if err != nil {
		return nil, nil, err
	}
	dh0, err := dh(&eph.priv, &b.SignedPrekey)
	if err != nil {
		return nil, nil, err
	}
	ss, ct, err := encapsulate(ek)
	if err != nil {
		return nil, nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: ML-KEM encapsulation failed", err)
	}
	setup := &HybridSetup{EphemeralKey: eph.pub, SignedPrekey: b.SignedPrekey, KEMCiphertext: ct, HeaderEncryption: cfg.HeaderEncryption}
	ekHash := sha256.Sum256(b.PQPrekey)
	rk0 := hybridInit(&dh0, ss, b.IdentityKey, setup, &ekHash)
	clear(ss)
	if setup.HeaderEncryption {
		s.st.initInitiatorHE(&rk0, &dh0, eph, &b.SignedPrekey)
		return s, setup, nil
	}
	rk, cks := kdfRK(&rk0, &dh0)
	s.st = core{flags: flagDHr | flagCKs, dhs: eph, dhr: b.SignedPrekey, rk: rk, cks: cks}
	return s, setup, nil
}

// AcceptHybrid prepares the responder's side for prekey p and the
// initiator's setup data. A nil setup means the initiator ran the contract
// setup, and AcceptHybrid is exactly Accept. Otherwise p must offer the
// extension and setup must name its prekey (else ErrDowngrade); the KEM
// ciphertext is decapsulated, the session is initialized at once, bound to
// the setup's ephemeral key, and can send first. A first message that was
// not made with this setup fails to decrypt (ErrAuthFailed): if setup data
// is stripped or replaced, nothing silently falls back.
//
// Like Accept, AcceptHybrid does not authenticate the initiator.
func AcceptHybrid(p *Prekey, setup *HybridSetup, cfg Config) (*Session, error) {
	if p == nil {
		return nil, errInput("nil prekey")
	}
	if setup == nil || cfg.HeaderEncryption && !setup.HeaderEncryption {
		if cfg.HeaderEncryption {
			return nil, errDowngrade("setup data does not request the required header encryption")
		}
		return Accept(p, cfg)
	}
	if p.kem == nil {
		return nil, errDowngrade("hybrid setup for a prekey without the extension")
	}
	if setup.SignedPrekey != p.pub {
		return nil, errDowngrade("hybrid setup is for another prekey")
	}
	if len(setup.KEMCiphertext) != mlkem.CiphertextSize768 {
		return nil, errInput("hybrid setup: ML-KEM ciphertext must be 1088 bytes")
	}
	ss, err := p.kem.Decapsulate(setup.KEMCiphertext)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: ML-KEM decapsulation failed", err)
	}
	dh0, err := dh(&p.priv, &setup.EphemeralKey)
	if err != nil {
		clear(ss)
		return nil, err
	}
	rk0 := hybridInit(&dh0, ss, p.identity[:], setup, &p.kemHash)
	clear(ss)
	s := newSession(cfg)
	st := &s.st
	if setup.HeaderEncryption {
		st.initResponderHE(&rk0, &dh0, keyPair{priv: p.priv, pub: p.pub}, &setup.EphemeralKey)
		return s, nil
	}
	st.dhs = keyPair{priv: p.priv, pub: p.pub}
	st.rk, st.ckr = kdfRK(&rk0, &dh0)
	st.dhr = setup.EphemeralKey
	st.flags = flagDHr | flagCKr
	return s, nil
}

// hybridInit is the hybrid initial root key:
//
//	RK0 = HKDF-SHA256(ikm = dh0 ‖ ss, salt = transcript, info = infoPQXDH, L = 32)
//	transcript = SHA-256("talos.ratchet.pqxdh.v1\n" ‖ identity key (32) ‖
//	             EK (32) ‖ SPK (32) ‖ SHA-256(encapsulation key) ‖ ciphertext
//	             [‖ "\nheader-encryption" when requested])
//
// After it the contract schedule continues unchanged: (RK, CK) =
// KDF_RK(RK0, dh0).
func hybridInit(dh0 *[32]byte, ss, identityKey []byte, setup *HybridSetup, ekHash *[32]byte) [32]byte {
	t := sha256.New()
	t.Write([]byte(pqDomain + "\n"))
	t.Write(identityKey)
	t.Write(setup.EphemeralKey[:])
	t.Write(setup.SignedPrekey[:])
	t.Write(ekHash[:])
	t.Write(setup.KEMCiphertext)
	if setup.HeaderEncryption {
		t.Write([]byte("\nheader-encryption"))
	}
	salt := t.Sum(nil)
	var ikm [64]byte
	copy(ikm[:], dh0[:])
	copy(ikm[32:], ss)
	okm, err := hkdf.Key(sha256.New, ikm[:], salt, infoPQXDH, 32)
	clear(ikm[:])
	if err != nil {
		panic("ratchet: " + err.Error()) // only for lengths beyond 255 blocks
	}
	var rk0 [32]byte
	copy(rk0[:], okm)
	clear(okm)
	return rk0
}

type hybridSetupJSON struct {
	Type             string `json:"type"`
	EphemeralKey     string `json:"ephemeral_key"`
	SignedPrekey     string `json:"signed_prekey"`
	KEMCiphertext    string `json:"kem_ciphertext"`
	HeaderEncryption *bool  `json:"header_encryption,omitempty"`
}

// MarshalJSON returns the setup's canonical JSON:
// {"ephemeral_key","header_encryption"?,"kem_ciphertext","signed_prekey","type":"talos.ratchet.pqxdh.v1"}.
func (h *HybridSetup) MarshalJSON() ([]byte, error) {
	j := hybridSetupJSON{
		Type:          pqDomain,
		EphemeralKey:  contracts.EncodeBase64URL(h.EphemeralKey[:]),
		SignedPrekey:  contracts.EncodeBase64URL(h.SignedPrekey[:]),
		KEMCiphertext: contracts.EncodeBase64URL(h.KEMCiphertext),
	}
	if h.HeaderEncryption {
		t := true
		j.HeaderEncryption = &t
	}
	return contracts.Marshal(j)
}

// ParseHybridSetup parses the JSON of a HybridSetup (strict: exact fields,
// no duplicates, strict base64url, exact lengths). Errors are
// *contracts.Error with code TALOS_INVALID_INPUT.
func ParseHybridSetup(raw []byte) (*HybridSetup, error) {
	if len(raw) > maxBundleSize {
		return nil, errInput("hybrid setup too large")
	}
	var j hybridSetupJSON
	if err := contracts.UnmarshalStrict(raw, &j); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "ratchet: invalid hybrid setup", err)
	}
	if j.Type != pqDomain {
		return nil, errInput("hybrid setup: unknown type")
	}
	ek, err1 := contracts.DecodeBase64URL(j.EphemeralKey)
	spk, err2 := contracts.DecodeBase64URL(j.SignedPrekey)
	ct, err3 := contracts.DecodeBase64URL(j.KEMCiphertext)
	if err1 != nil || err2 != nil || err3 != nil || len(ek) != 32 || len(spk) != 32 || len(ct) != mlkem.CiphertextSize768 {
		return nil, errInput("hybrid setup: malformed key or ciphertext")
	}
	if j.HeaderEncryption != nil && !*j.HeaderEncryption {
		return nil, errInput("hybrid setup: header_encryption is true or absent")
	}
	h := &HybridSetup{KEMCiphertext: ct, HeaderEncryption: j.HeaderEncryption != nil}
	copy(h.EphemeralKey[:], ek)
	copy(h.SignedPrekey[:], spk)
	return h, nil
}

// UnmarshalJSON implements json.Unmarshaler with ParseHybridSetup's rules.
func (h *HybridSetup) UnmarshalJSON(raw []byte) error {
	v, err := ParseHybridSetup(raw)
	if err != nil {
		return err
	}
	*h = *v
	return nil
}

var _ json.Marshaler = (*HybridSetup)(nil)
