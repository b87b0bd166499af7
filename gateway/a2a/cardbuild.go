package a2a

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// An AgentSkill is one skill an agent card advertises.
type AgentSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags,omitempty"`
	Examples    []string `json:"examples,omitempty"`
}

// An AgentCard describes this agent. [AgentCard.V1] is the A2A v1 card
// (schemas/a2a/v1/agent_card, answered by GetExtendedAgentCard);
// [AgentCard.Sign] is the public card served at the well-known paths:
// the v1 card's fields plus the compat profile, auth and the x_talos
// extension of schemas/a2a/agent_card, signed.
type AgentCard struct {
	Name, Description, Version string
	// Organization and OrganizationURL name the provider.
	Organization, OrganizationURL string
	// DocumentationURL is required by the v1 card.
	DocumentationURL string
	// RPCURL is the absolute URL of the JSON-RPC endpoint (…/rpc).
	RPCURL string
	Skills []AgentSkill
	// Streaming and PushNotifications advertise those capabilities.
	Streaming, PushNotifications bool
}

// Extension URIs the card advertises.
const (
	ExtensionAttestation = "https://talosprotocol.com/extensions/a2a/attestation/v1"
)

func (c AgentCard) check() error {
	if c.Name == "" || c.Description == "" || c.Version == "" || c.Organization == "" || c.DocumentationURL == "" || c.RPCURL == "" {
		return contracts.New(contracts.CodeInvalidInput, "a2a: AgentCard needs Name, Description, Version, Organization, DocumentationURL and RPCURL")
	}
	for _, s := range c.Skills {
		if s.ID == "" || s.Name == "" || s.Description == "" {
			return contracts.New(contracts.CodeInvalidInput, "a2a: AgentSkill needs ID, Name and Description")
		}
	}
	return nil
}

func (c AgentCard) v1Map() map[string]any {
	provider := map[string]any{"organization": c.Organization}
	if c.OrganizationURL != "" {
		provider["url"] = c.OrganizationURL
	}
	skills := c.Skills
	if skills == nil {
		skills = []AgentSkill{}
	}
	return map[string]any{
		"name": c.Name, "description": c.Description, "version": c.Version, "provider": provider,
		"documentationUrl":    c.DocumentationURL,
		"supportedInterfaces": []map[string]any{{"url": c.RPCURL, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}},
		"defaultInputModes":   []string{"text"}, "defaultOutputModes": []string{"text"},
		"capabilities": map[string]any{"streaming": c.Streaming, "pushNotifications": c.PushNotifications, "extendedAgentCard": true,
			"extensions": []map[string]any{{"uri": ExtensionAttestation, "description": "Talos HTTP attestation v1 on every request; capability tokens in X-Talos-Capability.", "required": true}}},
		"skills": skills,
		// HTTP attestation is not one of the OpenAPI-style scheme types the
		// card knows; it is declared as an http scheme named for it.
		"securitySchemes":      map[string]any{"talosAttestation": map[string]any{"type": "http", "scheme": "talos-attestation-v1"}},
		"securityRequirements": []map[string][]string{{"talosAttestation": {}}},
	}
}

// V1 returns the A2A v1 card document.
func (c AgentCard) V1() (json.RawMessage, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c.v1Map())
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "a2a: card unencodable")
	}
	return b, nil
}

// Sign returns the public card, signed with signer (Ed25519): the v1
// fields, the compat profile and auth, and x_talos naming the signer's
// did:key (so a client can match the signature's kid).
func (c AgentCard) Sign(signer crypto.Signer) (*SignedAgentCard, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: agent cards are signed with Ed25519")
	}
	did, err := identity.DIDFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	m := c.v1Map()
	m["profile"] = compatProfile
	m["auth"] = map[string]any{"type": "bearer", "scheme": "talos-attestation-v1"}
	m["x_talos"] = map[string]any{"supports_talos_attestation": true, "supported_surfaces": []string{"a2a"}, "public_key": did.String()}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "a2a: card unencodable")
	}
	return SignAgentCard(b, signer)
}
