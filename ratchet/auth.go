package ratchet

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// setupProofType names the proof format and is the signature's domain
// separator, so a setup signature can never be mistaken for a prekey
// signature (32 raw bytes) or any signed JSON object.
const setupProofType = "talos.ratchet.setup.v1"

// A SetupProof is the authenticated-setup extension: the initiator signs,
// with its identity wallet, its ephemeral key together with the responder's
// identity key and signed prekey. The wire messages are unchanged; the
// proof travels beside them (for example in an A2A session-create request).
//
// Ed25519 signature input: "talos.ratchet.setup.v1\n" ‖ initiator DID ‖ "\n"
// ‖ ephemeral key (32) ‖ signed prekey (32) ‖ responder identity key (32).
type SetupProof struct {
	Initiator    identity.DID
	EphemeralKey [32]byte
	SignedPrekey [32]byte
	Responder    ed25519.PublicKey
	Signature    []byte
}

func (p *SetupProof) signingInput() []byte {
	did := p.Initiator.String()
	b := make([]byte, 0, len(setupProofType)+2+len(did)+3*32)
	b = append(b, setupProofType...)
	b = append(b, '\n')
	b = append(b, did...)
	b = append(b, '\n')
	b = append(b, p.EphemeralKey[:]...)
	b = append(b, p.SignedPrekey[:]...)
	return append(b, p.Responder...)
}

// InitiateAuthenticated is Initiate plus a SetupProof signed by w, the
// initiator's identity key (any crypto.Signer holding an Ed25519 key: a
// wallet's Signer(), or a key in a KMS or HSM). Hand the proof to the
// responder, who checks it with AcceptAuthenticated.
func InitiateAuthenticated(b PrekeyBundle, w crypto.Signer, cfg Config) (*Session, *SetupProof, error) {
	pub, err := signerKey(w)
	if err != nil {
		return nil, nil, err
	}
	did, err := identity.DIDFromPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	s, err := Initiate(b, cfg)
	if err != nil {
		return nil, nil, err
	}
	p := &SetupProof{
		Initiator:    did,
		EphemeralKey: s.st.dhs.pub,
		SignedPrekey: b.SignedPrekey,
		Responder:    append(ed25519.PublicKey(nil), b.IdentityKey...),
	}
	if p.Signature, err = signWith(w, pub, p.signingInput()); err != nil {
		return nil, nil, err
	}
	return s, p, nil
}

// AcceptAuthenticated is Accept for a session whose initiator must be
// expected. It verifies proof: issued by expected, for prekey p, signature
// valid; and binds the session to the proof's ephemeral key, so only the
// holder of that key (the initiator) can produce messages it accepts.
// Unlike Accept, the session is initialized at once and can also send
// first. It returns ErrInvalidSignature when the proof does not verify or
// names another initiator or prekey.
func AcceptAuthenticated(p *Prekey, proof *SetupProof, expected identity.DID, cfg Config) (*Session, error) {
	if p == nil || proof == nil {
		return nil, errInput("nil prekey or setup proof")
	}
	if expected.IsZero() || proof.Initiator != expected {
		return nil, errSignature("setup proof is not from the expected initiator")
	}
	if proof.SignedPrekey != p.pub || !bytes.Equal(proof.Responder, p.identity[:]) {
		return nil, errSignature("setup proof is for another prekey")
	}
	if !expected.Verify(proof.signingInput(), proof.Signature) {
		return nil, errSignature("setup proof signature does not verify")
	}
	s, err := Accept(p, cfg)
	if err != nil {
		return nil, err
	}
	if err := initResponder(&s.st, &proof.EphemeralKey); err != nil {
		return nil, err
	}
	return s, nil
}

type setupProofJSON struct {
	Type         string `json:"type"`
	Initiator    string `json:"initiator"`
	EphemeralKey string `json:"ephemeral_key"`
	SignedPrekey string `json:"signed_prekey"`
	Responder    string `json:"responder_key"`
	Signature    string `json:"signature"`
}

// MarshalJSON returns the proof's canonical JSON.
func (p *SetupProof) MarshalJSON() ([]byte, error) {
	return contracts.Marshal(setupProofJSON{
		Type:         setupProofType,
		Initiator:    p.Initiator.String(),
		EphemeralKey: contracts.EncodeBase64URL(p.EphemeralKey[:]),
		SignedPrekey: contracts.EncodeBase64URL(p.SignedPrekey[:]),
		Responder:    contracts.EncodeBase64URL(p.Responder),
		Signature:    contracts.EncodeBase64URL(p.Signature),
	})
}

// ParseSetupProof parses the JSON of a SetupProof (strict: no unknown or
// duplicate fields, strict base64url). It does not verify the signature;
// AcceptAuthenticated does. Errors are *contracts.Error with code
// TALOS_INVALID_INPUT.
func ParseSetupProof(raw []byte) (*SetupProof, error) {
	if len(raw) > maxBundleSize {
		return nil, errInput("setup proof too large")
	}
	var j setupProofJSON
	if err := contracts.UnmarshalStrict(raw, &j); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "ratchet: invalid setup proof", err)
	}
	if j.Type != setupProofType {
		return nil, errInput("setup proof: unknown type")
	}
	did, err := identity.ParseDID(j.Initiator)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "ratchet: setup proof: invalid initiator", err)
	}
	p := &SetupProof{Initiator: did}
	ek, err1 := contracts.DecodeBase64URL(j.EphemeralKey)
	spk, err2 := contracts.DecodeBase64URL(j.SignedPrekey)
	rk, err3 := contracts.DecodeBase64URL(j.Responder)
	sig, err4 := contracts.DecodeBase64URL(j.Signature)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil ||
		len(ek) != 32 || len(spk) != 32 || len(rk) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return nil, errInput("setup proof: malformed key or signature")
	}
	copy(p.EphemeralKey[:], ek)
	copy(p.SignedPrekey[:], spk)
	p.Responder = rk
	p.Signature = sig
	return p, nil
}

// UnmarshalJSON implements json.Unmarshaler with ParseSetupProof's rules.
func (p *SetupProof) UnmarshalJSON(raw []byte) error {
	v, err := ParseSetupProof(raw)
	if err != nil {
		return err
	}
	*p = *v
	return nil
}

var _ json.Marshaler = (*SetupProof)(nil)
