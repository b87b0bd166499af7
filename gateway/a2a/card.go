package a2a

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"net/http"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// An AgentCardSignature is the A2A spec's JWS signature of a card: the
// protected header and the signature in base64url; the payload is the
// RFC 8785 canonical card without "signatures" (detached).
type AgentCardSignature struct {
	Protected string `json:"protected"`
	Signature string `json:"signature"`
}

type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ,omitempty"`
}

// A SignedAgentCard is a card document with its signatures.
type SignedAgentCard struct {
	doc []byte
}

// JSON returns the signed card document.
func (c *SignedAgentCard) JSON() json.RawMessage { return append(json.RawMessage(nil), c.doc...) }

// cardPayload parses card (a JSON object, duplicate and case-folded keys
// refused), removes "signatures" and returns the canonical bytes.
func cardPayload(card []byte) ([]byte, []AgentCardSignature, error) {
	if err := contracts.CheckCaseFold(card); err != nil {
		return nil, nil, err
	}
	var m map[string]json.RawMessage
	if err := contracts.UnmarshalFields(card, &m); err != nil || m == nil {
		return nil, nil, contracts.New(contracts.CodeInvalidInput, "a2a: agent card is not a JSON object")
	}
	var sigs []AgentCardSignature
	if raw, ok := m["signatures"]; ok {
		if err := contracts.UnmarshalFields(raw, &sigs); err != nil {
			return nil, nil, contracts.New(contracts.CodeInvalidInput, "a2a: agent card signatures malformed")
		}
		delete(m, "signatures")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, contracts.New(contracts.CodeInvalidInput, "a2a: agent card unencodable")
	}
	canon, err := contracts.Canonicalize(b)
	if err != nil {
		return nil, nil, err
	}
	return canon, sigs, nil
}

// SignAgentCard signs card (a JSON object) with signer's Ed25519 key,
// alg EdDSA, kid the key's did:key, and returns the card with a
// "signatures" member (existing signatures are replaced).
func SignAgentCard(card []byte, signer crypto.Signer) (*SignedAgentCard, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: agent cards are signed with Ed25519")
	}
	did, err := identity.DIDFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	payload, _, err := cardPayload(card)
	if err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(jwsHeader{Alg: "EdDSA", Kid: did.String(), Typ: "JOSE"})
	prot := contracts.EncodeBase64URL(hb)
	input := prot + "." + contracts.EncodeBase64URL(payload)
	sig, err := signer.Sign(nil, []byte(input), crypto.Hash(0))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "a2a: signing the agent card failed", err)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(payload, &m)
	sb, _ := json.Marshal([]AgentCardSignature{{Protected: prot, Signature: contracts.EncodeBase64URL(sig)}})
	m["signatures"] = sb
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "a2a: agent card unencodable")
	}
	return &SignedAgentCard{doc: doc}, nil
}

// VerifyAgentCard checks a remote agent's card before talking to it: one
// of its signatures must be an EdDSA JWS over the canonical card by
// expected (the agent's did:key, learned out of band). It returns the
// card without its signatures. Every failure is a *contracts.Error with
// code AUTH_INVALID_SIGNATURE (bad or missing signature) or
// TALOS_INVALID_INPUT (malformed card).
func VerifyAgentCard(card []byte, expected identity.DID) (map[string]json.RawMessage, error) {
	payload, sigs, err := cardPayload(card)
	if err != nil {
		return nil, err
	}
	p64 := contracts.EncodeBase64URL(payload)
	for _, s := range sigs {
		hb, err := contracts.DecodeBase64URL(s.Protected)
		if err != nil {
			continue
		}
		var h jwsHeader
		if contracts.UnmarshalFields(hb, &h) != nil || h.Alg != "EdDSA" || h.Kid != expected.String() {
			continue
		}
		sig, err := contracts.DecodeBase64URL(s.Signature)
		if err != nil {
			continue
		}
		if expected.Verify([]byte(s.Protected+"."+p64), sig) {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(payload, &m)
			return m, nil
		}
	}
	return nil, contracts.New(contracts.CodeAuthInvalidSignature, "a2a: agent card has no valid signature by the expected key")
}

// CardHandler serves a signed card at GET /.well-known/agent-card.json and
// the legacy /.well-known/agent.json (public, cacheable).
func CardHandler(c *SignedAgentCard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			talosWriteErr(w, r, contracts.New(contracts.CodeInvalidInput, "method not allowed"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(c.doc)
	})
}
