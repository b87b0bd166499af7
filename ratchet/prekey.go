package ratchet

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"encoding/json"
	"io"
	"strconv"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A Prekey is a responder's signed X25519 prekey together with its private
// half. Publish its Bundle; keep the Prekey to Accept sessions.
//
// A Prekey is safe for concurrent use (it is immutable).
type Prekey struct {
	_ [0]func() // not comparable
	*prekeyRef
}

// prekeyRef keeps the private key two pointers away; see hiddenNote.
type prekeyRef struct{ *prekeyState }

type prekeyState struct {
	identity [ed25519.PublicKeySize]byte
	priv     [32]byte
	pub      [32]byte
	sig      [ed25519.SignatureSize]byte

	// hybrid extension (kem is nil without it)
	kem     *mlkem.DecapsulationKey768
	kemSeed [mlkem.SeedSize]byte
	kemHash [32]byte // SHA-256 of the encapsulation key
	pqSig   [ed25519.SignatureSize]byte
}

// GeneratePrekey creates a signed prekey for the identity key of w (any
// crypto.Signer holding an Ed25519 key: a wallet's Signer(), or a key in a
// KMS or HSM): an X25519 key pair whose 32 private bytes are read from rand
// (crypto/rand.Reader if nil), and the contract's prekey_signature, an
// Ed25519 signature by w over the raw 32-byte public prekey. The prekey is never one committed to the
// hybrid setup (see PrekeyBundle.HybridCommitted); GenerateHybridPrekey
// makes those.
func GeneratePrekey(w crypto.Signer, rnd io.Reader) (*Prekey, error) {
	pub, err := signerKey(w)
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = Config{}.withDefaults().Rand
	}
	p := newPrekey()
	for i := 0; ; i++ {
		if _, err := io.ReadFull(rnd, p.priv[:]); err != nil {
			return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: reading randomness failed", err)
		}
		p.pub = publicKey(&p.priv)
		// Never make a prekey that looks committed to the hybrid setup
		// (probability 2^-12): hybrid initiators would refuse it.
		if !pqCommitted(&p.pub) || i == maxPQMarkerTries {
			break
		}
	}
	sig, err := signWith(w, pub, p.pub[:])
	if err != nil {
		return nil, err
	}
	copy(p.identity[:], pub)
	copy(p.sig[:], sig)
	return p, nil
}

// signerKey returns the Ed25519 public key of an identity signer.
func signerKey(s crypto.Signer) (ed25519.PublicKey, error) {
	if s == nil {
		return nil, errInput("nil identity signer")
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errInput("the identity signer does not hold an Ed25519 key")
	}
	return pub, nil
}

// signWith signs msg with s (pure Ed25519) and checks the signature, so
// that a faulty remote signer cannot publish what peers would refuse.
func signWith(s crypto.Signer, pub ed25519.PublicKey, msg []byte) ([]byte, error) {
	sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: the identity signer failed", err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return nil, contracts.New(contracts.CodeCryptoError, "ratchet: the identity signer returned an invalid signature")
	}
	return sig, nil
}

func newPrekey() *Prekey { return &Prekey{prekeyRef: &prekeyRef{&prekeyState{}}} }

// Bundle returns the public prekey bundle to publish.
func (p *Prekey) Bundle() PrekeyBundle {
	b := PrekeyBundle{
		IdentityKey:     append(ed25519.PublicKey(nil), p.identity[:]...),
		SignedPrekey:    p.pub,
		PrekeySignature: append([]byte(nil), p.sig[:]...),
	}
	if p.kem != nil {
		b.PQPrekey = p.kem.EncapsulationKey().Bytes()
		b.PQPrekeySignature = append([]byte(nil), p.pqSig[:]...)
	}
	return b
}

// PublicKey returns the X25519 public prekey.
func (p *Prekey) PublicKey() [32]byte { return p.pub }

// A PrekeyBundle is the published half of a Prekey (contract
// x3dh_prekey_bundle): the responder's Ed25519 identity key, its X25519
// signed prekey, and the Ed25519 signature over the raw prekey bytes. The
// contract's optional one_time_prekey is never used by the protocol; it is
// parsed, checked and carried but takes no part in key agreement.
//
// PQPrekey and PQPrekeySignature are the hybrid extension (members
// pq_prekey and pq_prekey_signature, which the contract schema allows as
// extra members): an ML-KEM-768 encapsulation key and the identity key's
// Ed25519 signature over "talos.ratchet.pqxdh.v1\n" ‖ "ML-KEM-768\n" ‖
// signed prekey ‖ encapsulation key. Both are nil in a contract bundle.
type PrekeyBundle struct {
	IdentityKey       ed25519.PublicKey
	SignedPrekey      [32]byte
	PrekeySignature   []byte
	OneTimePrekey     []byte // nil, or a 32-byte X25519 key
	PQPrekey          []byte // nil, or a 1184-byte ML-KEM-768 encapsulation key
	PQPrekeySignature []byte // nil, or 64 bytes
}

// Verify checks the prekey signature with the bundle's identity key, and
// the hybrid extension's signature and key when the bundle has them. It
// returns ErrInvalidSignature (X3DH_INVALID_SIGNATURE) on any failure.
func (b PrekeyBundle) Verify() error {
	if len(b.IdentityKey) != ed25519.PublicKeySize || len(b.PrekeySignature) != ed25519.SignatureSize {
		return errSignature("malformed prekey bundle")
	}
	if !identity.Verify(b.SignedPrekey[:], b.PrekeySignature, b.IdentityKey) {
		return errSignature("prekey signature does not verify")
	}
	if b.PQPrekey != nil || b.PQPrekeySignature != nil {
		if _, err := b.verifyPQ(); err != nil {
			return err
		}
	}
	return nil
}

// DID returns the did:key of the bundle's identity key, to compare with the
// responder the caller means to reach.
func (b PrekeyBundle) DID() (identity.DID, error) {
	return identity.DIDFromPublicKey(b.IdentityKey)
}

type bundleJSON struct {
	IdentityKey     string  `json:"identity_key"`
	SignedPrekey    string  `json:"signed_prekey"`
	PrekeySignature string  `json:"prekey_signature"`
	OneTimePrekey   *string `json:"one_time_prekey,omitempty"`
	PQPrekey        *string `json:"pq_prekey,omitempty"`
	PQSignature     *string `json:"pq_prekey_signature,omitempty"`
}

// MarshalJSON returns the canonical JSON of the contract form, with
// base64url fields.
func (b PrekeyBundle) MarshalJSON() ([]byte, error) {
	j := bundleJSON{
		IdentityKey:     contracts.EncodeBase64URL(b.IdentityKey),
		SignedPrekey:    contracts.EncodeBase64URL(b.SignedPrekey[:]),
		PrekeySignature: contracts.EncodeBase64URL(b.PrekeySignature),
	}
	if b.OneTimePrekey != nil {
		s := contracts.EncodeBase64URL(b.OneTimePrekey)
		j.OneTimePrekey = &s
	}
	if b.PQPrekey != nil {
		s := contracts.EncodeBase64URL(b.PQPrekey)
		j.PQPrekey = &s
	}
	if b.PQPrekeySignature != nil {
		s := contracts.EncodeBase64URL(b.PQPrekeySignature)
		j.PQSignature = &s
	}
	return contracts.Marshal(j)
}

// ParseBundle parses the contract JSON form of a prekey bundle, with the
// hybrid extension's two members when present (both or neither). Unknown
// fields, duplicate keys and non-strict base64url are rejected;
// one_time_prekey may be absent or null. It does not verify the signature
// (Initiate does; or call Verify). Errors are *contracts.Error with code
// TALOS_INVALID_INPUT.
//
// Bundles written by the Python SDK (padded standard base64) are refused
// here; read them with ParseBundleLegacy.
func ParseBundle(raw []byte) (PrekeyBundle, error) {
	return parseBundle(raw, contracts.DecodeBase64URL, "base64url")
}

// ParseBundleLegacy parses a prekey bundle as the Python SDK writes it
// (PrekeyBundle.to_dict, json.dumps): the contract's fields, but each byte
// field in padded standard base64 ("+", "/", "="), against the schema's
// base64url. It also accepts the strict form, so a caller reading bundles
// of unknown origin can use it; every other rule of ParseBundle holds
// (exact fields, no duplicates, exact key lengths). Use it only where such
// peers are expected: ParseBundle is the strict path, and a bundle read
// here re-encodes (MarshalJSON) in the contract's form, so legacy bytes
// never propagate. The signature is over the raw prekey bytes either way,
// so the encoding does not affect Verify.
func ParseBundleLegacy(raw []byte) (PrekeyBundle, error) {
	return parseBundle(raw, contracts.DecodeBase64Lenient, "base64")
}

func parseBundle(raw []byte, decode func(string) ([]byte, error), enc string) (PrekeyBundle, error) {
	var b PrekeyBundle
	if len(raw) > maxBundleSize {
		return b, errInput("prekey bundle too large")
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return b, contracts.Wrap(contracts.CodeInvalidInput, "ratchet: invalid prekey bundle JSON", err)
	}
	var j bundleJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || dec.More() {
		return b, errInput("invalid prekey bundle")
	}
	if err := checkExactKeys(raw); err != nil {
		return b, err
	}
	ik, err := decode(j.IdentityKey)
	if err != nil || len(ik) != ed25519.PublicKeySize {
		return b, errInput("prekey bundle: identity_key must be 32 bytes of " + enc)
	}
	spk, err := decode(j.SignedPrekey)
	if err != nil || len(spk) != 32 {
		return b, errInput("prekey bundle: signed_prekey must be 32 bytes of " + enc)
	}
	sig, err := decode(j.PrekeySignature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return b, errInput("prekey bundle: prekey_signature must be 64 bytes of " + enc)
	}
	if j.OneTimePrekey != nil {
		otp, err := decode(*j.OneTimePrekey)
		if err != nil || len(otp) != 32 {
			return b, errInput("prekey bundle: one_time_prekey must be 32 bytes of " + enc)
		}
		b.OneTimePrekey = otp
	}
	if (j.PQPrekey == nil) != (j.PQSignature == nil) {
		return b, errInput("prekey bundle: pq_prekey and pq_prekey_signature go together")
	}
	if j.PQPrekey != nil {
		// The extension is ours: always strict base64url.
		pk, err := contracts.DecodeBase64URL(*j.PQPrekey)
		if err != nil || len(pk) != mlkem.EncapsulationKeySize768 {
			return b, errInput("prekey bundle: pq_prekey must be 1184 bytes of base64url")
		}
		ps, err := contracts.DecodeBase64URL(*j.PQSignature)
		if err != nil || len(ps) != ed25519.SignatureSize {
			return b, errInput("prekey bundle: pq_prekey_signature must be 64 bytes of base64url")
		}
		b.PQPrekey, b.PQPrekeySignature = pk, ps
	}
	b.IdentityKey = ik
	copy(b.SignedPrekey[:], spk)
	b.PrekeySignature = sig
	return b, nil
}

// UnmarshalJSON implements json.Unmarshaler with ParseBundle's rules.
func (b *PrekeyBundle) UnmarshalJSON(raw []byte) error {
	v, err := ParseBundle(raw)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// checkExactKeys refuses object keys that are not spelled exactly as the
// contract's (encoding/json alone matches them without regard to case, so
// {"Identity_Key":…} would decode like {"identity_key":…}).
func checkExactKeys(raw []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return errInput("invalid prekey bundle")
	}
	for k := range m {
		switch k {
		case "identity_key", "signed_prekey", "prekey_signature", "one_time_prekey", "pq_prekey", "pq_prekey_signature":
		default:
			return errInput("prekey bundle: unknown or mis-cased field " + strconv.Quote(k))
		}
	}
	return nil
}
