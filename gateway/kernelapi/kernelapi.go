// Package kernelapi serves the Talos kernel over HTTP for callers that
// are not in-process: POST /v1/authorize asks the talos.Kernel "may the
// attested principal do tool/action with this capability now?" (rate
// limit and audit included), and GET /v1/identity publishes what a client
// needs to talk to and audit the gateway (its DID, the audit log's
// verifier key, and the opcode each attested route's signature covers).
//
// # Wire
//
//	POST /v1/authorize  (attested, opcode "kernel.authorize")
//	  {"capability":"<token>","tool":"files","action":"read","args_digest":"…","scope":{…}}
//	  200 {"allowed":true,"reason":"ALLOWED","capability_hash":"…","grant":{…},
//	       "principal":"did:key:…","tool":"files","action":"read","audit_index":7,"event_hash":"…"}
//	GET  /v1/identity
//	  200 {"did":"did:key:…","audit_origin":"…","audit_verifier_key":"…","version":"…",
//	       "protocol_range":"…","attested_routes":{"POST /v1/authorize":"kernel.authorize",…}}
//
// A denial is a 200 answer with allowed false and the contract code (the
// question was answered, and audited); a rate-limited caller gets 429
// TALOS_RATE_LIMITED (retryable); a back-end failure is an error answer,
// never an allow.
//
// # Security
//
//   - The principal is the attested key (the talos.Attester in front of
//     the route, resolving keys through the admin.Registry), never a body
//     field; a registration deleted after the key resolved is refused.
//   - Bodies are read strictly (64 KiB; duplicate, unknown, mis-cased or
//     case-folded keys, null and floats refused) before the Kernel runs.
//   - Every decision, allowed or denied, is one audit event; the answer
//     carries its index and hash so the caller can ask for an inclusion
//     proof.
package kernelapi

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/internal/httpx"
	"github.com/talosgo/talos/identity"
)

// Opcode is the attestation opcode, audit surface and rate-limit surface
// of POST /v1/authorize.
const Opcode = "kernel.authorize"

// Route is the attested route to add to the gateway's talos.RouteTable.
var Route = talos.Route{Pattern: "POST /v1/authorize", Opcode: Opcode, AttestOnly: true}

// Config configures a Handler. Every field is required.
type Config struct {
	// Kernel decides, rate-limits and audits each authorize call.
	Kernel *talos.Kernel
	// Attester verifies the attested route (its table must hold Route)
	// and resolves keys with Principals.
	Attester *talos.Attester
	// Principals gives the caller's registration (its team).
	Principals *admin.Registry
	// DID is the gateway's identity, published by GET /v1/identity.
	DID identity.DID
	// AuditOrigin and AuditKey name the audit log's checkpoint signer
	// (published as a C2SP verifier key).
	AuditOrigin string
	AuditKey    ed25519.PublicKey
	// Opcodes returns the opcode of every attested route the gateway
	// serves (published so that clients build their route tables).
	Opcodes func() map[string]string
}

// Handler serves the kernel API.
type Handler struct {
	cfg  Config
	vkey string
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Kernel == nil || cfg.Attester == nil || cfg.Principals == nil || cfg.Opcodes == nil || len(cfg.AuditKey) == 0 {
		return nil, errors.New("kernelapi: Kernel, Attester, Principals, AuditKey and Opcodes are required")
	}
	vkey, err := audit.VerifierKey(cfg.AuditOrigin, cfg.AuditKey)
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, vkey: vkey}, nil
}

// Register mounts POST /v1/authorize (behind the Attester) and
// GET /v1/identity on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(Route.Pattern, h.cfg.Attester.Wrap(h.cfg.Principals.Registered(h.handleAuthorize)))
	mux.HandleFunc("GET /v1/identity", h.handleIdentity)
}

// AuthorizeRequest is the body of POST /v1/authorize.
type AuthorizeRequest struct {
	Capability string            `json:"capability"`
	Tool       string            `json:"tool"`
	Action     string            `json:"action"`
	ArgsDigest string            `json:"args_digest,omitempty"`
	Scope      *capability.Scope `json:"scope,omitempty"`
}

// Decision is the answer of POST /v1/authorize.
type Decision struct {
	Allowed        bool              `json:"allowed"`
	Reason         string            `json:"reason"`
	Code           string            `json:"code,omitempty"`
	CapabilityHash string            `json:"capability_hash,omitempty"`
	Grant          *capability.Grant `json:"grant,omitempty"`
	Principal      string            `json:"principal"`
	Tool           string            `json:"tool"`
	Action         string            `json:"action"`
	AuditIndex     uint64            `json:"audit_index"`
	EventHash      string            `json:"event_hash,omitempty"`
}

// decision is the answer for a Kernel outcome: the grant only when
// allowed.
func decision(out talos.Outcome) Decision {
	d := out.Decision
	b := Decision{
		Allowed: out.Allowed, Reason: string(d.Reason), Code: string(out.Code), CapabilityHash: d.CapabilityHash,
		Principal: d.Principal.String(), Tool: d.Tool, Action: d.Action,
		AuditIndex: out.Receipt.Index, EventHash: out.Receipt.EventHash,
	}
	if out.Allowed {
		g := d.Grant
		b.Grant = &g
	}
	return b
}

func (h *Handler) handleAuthorize(w http.ResponseWriter, r *http.Request, p *admin.Principal) {
	var req AuthorizeRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	did, err := identity.ParseDID(p.DID)
	if err != nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "unknown principal"))
		return
	}
	creq := capability.Request{Capability: req.Capability, Principal: did, Tool: req.Tool, Action: req.Action, ArgsDigest: req.ArgsDigest}
	if req.Scope != nil {
		creq.Scope = *req.Scope
	}
	out, err := h.cfg.Kernel.Do(r.Context(), talos.Call{
		Request: creq, HTTP: r, SurfaceID: Opcode, TemplatePath: "/v1/authorize", Team: p.TeamID,
	}, func(context.Context, capability.Decision) (int64, int, error) { return 0, http.StatusOK, nil })
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if out.Code == contracts.CodeRateLimited {
		talos.WriteError(w, r, contracts.New(out.Code, "rate limited").WithRetryable(true))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, decision(out))
}

// handleIdentity publishes the gateway's DID, the audit log's verifier key
// (everything an auditor needs to check checkpoints and proofs) and the
// opcode of every attested route (what a client signs).
func (h *Handler) handleIdentity(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"did": h.cfg.DID.String(), "audit_origin": h.cfg.AuditOrigin, "audit_verifier_key": h.vkey,
		"version": talos.Version, "protocol_range": talos.ProtocolRange,
		"attested_routes": h.cfg.Opcodes(),
	})
}
