package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
	"github.com/talosgo/talos/identity"
)

// SurfaceID is the audit surface of every admin action.
const SurfaceID = "admin"

// MaxTokenLifetime bounds the capabilities POST /v1/capabilities issues.
const MaxTokenLifetime = 30 * 24 * time.Hour

// Config configures a Handler. Every field but Now is required.
type Config struct {
	// Issuer signs the capabilities the handler issues; its DID is the
	// trust root delegation chains are checked against and the default
	// audience of issued tokens.
	Issuer *identity.Wallet
	// Store persists principals, roles, bindings and budgets.
	Store Store
	// Revocations receives POST /v1/capabilities/revocations; share it
	// with the gateway's capability.Verifier.
	Revocations capability.RevocationStore
	// Budget answers the usage of GET /v1/budgets/{scope}; share it with
	// the gateway's talos.Kernel.
	Budget budget.Budget
	// Audit and Events record one event per change (surface "admin";
	// Events' allowlist should admit "capability_hash" for it). A change
	// the log cannot record is answered as failed.
	Audit  audit.AuditLog
	Events *audit.EventBuilder
	// Nonces remembers the nonces of attested admin requests (replay
	// protection); share the gateway's nonce store so that every replica
	// refuses a replay.
	Nonces identity.NonceStore
	// Bootstrap and BootstrapID hold the bootstrap credential's hash
	// ([Bootstrap]); POST /v1/admin/bootstrap accepts that credential only
	// while no owner exists and spends it on first use. Nil: only a
	// recovery file can create an owner (or [Handler.PutIdentity]).
	Bootstrap   BootstrapStore
	BootstrapID string
	// RecoveryFile is the path of the recovery file ([RecoveryFileName] in
	// the data directory) and RecoveryKey the key its MAC is checked
	// with ([RecoveryKey] of the master key). Either empty: no recovery.
	RecoveryFile string
	RecoveryKey  []byte
	// OnChange, if set, is called with the document kind after every
	// change this handler applied and stored (KindPrincipal, KindRole,
	// KindBinding, KindBudget, KindIdentity, KindCapability,
	// KindRevocation, KindSession): the hook that tells other replicas to
	// [Handler.Reload]. It must not block.
	OnChange func(kind string)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Handler serves the admin API (see the package documentation for the
// routes) and holds the state it edits: the principal [Registry], the
// RBAC [Policy] and the [Budgets], loaded from the Store by New.
type Handler struct {
	cfg        Config
	attest     *identity.AttestationVerifier // admin identities, opcode "admin"
	principals *Registry
	policy     Policy
	budgets    Budgets
	reloadMu   sync.Mutex // one Reload at a time
	identMu    sync.Mutex // serializes identity changes (the last-owner rule) in this process
}

// state is what Reload reads from the Store.
type state struct {
	principals []*Principal
	roles      map[string]capability.Role
	bindings   map[string]capability.Binding
	compiled   *capability.RBAC
	budgets    map[string]budget.Scope
}

// New checks cfg and loads the stored documents. A document that no
// longer parses stops it: a gateway silently missing a registration or a
// budget is worse than one that does not start.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if cfg.Issuer == nil || cfg.Store == nil || cfg.Revocations == nil || cfg.Budget == nil ||
		cfg.Audit == nil || cfg.Events == nil || cfg.Nonces == nil {
		return nil, errors.New("admin: Issuer, Store, Revocations, Budget, Audit, Events and Nonces are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg}
	h.principals = newRegistry(cfg.Store, cfg.Now)
	var err error
	h.attest, err = identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return SurfaceID, nil },
		Keys:   identityKeys{h}, Nonces: cfg.Nonces, Now: cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	if err := h.Reload(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// Reload re-reads every document from the Store and swaps the principal
// registry's cache, the RBAC policy and the budgets for what it holds, all
// or nothing: a failed read or a document that no longer parses keeps the
// old state and returns the error. Admin identities and sessions are read
// from the store on each request and need no reload. Call it when
// another replica reports a change (Config.OnChange there).
func (h *Handler) Reload(ctx context.Context) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	st, err := h.read(ctx)
	if err != nil {
		return err
	}
	h.principals.replace(st.principals)
	h.policy.replace(st.roles, st.bindings, st.compiled)
	h.budgets.replace(st.budgets)
	return nil
}

// changed reports an applied change to Config.OnChange.
func (h *Handler) changed(kind string) {
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(kind)
	}
}

// Principals returns the principal registry (the Attester's key resolver).
func (h *Handler) Principals() *Registry { return h.principals }

// Policy returns the RBAC policy; wrap the Kernel's authorizer with
// [Policy.Authorizer] to enforce it.
func (h *Handler) Policy() *Policy { return &h.policy }

// Budgets returns the configured key and team budgets.
func (h *Handler) Budgets() *Budgets { return &h.budgets }

func (h *Handler) read(ctx context.Context) (*state, error) {
	docs, err := h.cfg.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	st := &state{roles: map[string]capability.Role{}, bindings: map[string]capability.Binding{}, budgets: map[string]budget.Scope{}}
	for _, d := range docs {
		bad := func(err error) error {
			return fmt.Errorf("admin state: %s %q: %w", d.Kind, d.ID, err)
		}
		switch d.Kind {
		case KindPrincipal:
			p, err := parsePrincipal(d.Doc)
			if err != nil {
				return nil, bad(err)
			}
			st.principals = append(st.principals, p)
		case KindRole:
			var req RoleRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return nil, bad(err)
			}
			st.roles[d.ID] = capability.Role{ID: d.ID, Permissions: req.Permissions}
		case KindBinding:
			var req BindingRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return nil, bad(err)
			}
			st.bindings[d.ID] = capability.Binding{Principal: req.Principal, Role: req.Role, Scope: req.Scope}
		case KindBudget:
			var req BudgetRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return nil, bad(err)
			}
			sc, err := req.Scope(d.ID)
			if err != nil {
				return nil, bad(err)
			}
			st.budgets[sc.ID] = sc
		}
	}
	st.compiled, err = compileRBAC(st.roles, st.bindings)
	if err != nil {
		return nil, fmt.Errorf("admin state: RBAC policy: %w", err)
	}
	return st, nil
}

// Register mounts the admin routes on mux, each behind [Handler.Require]
// with its declared (tool, action); POST /v1/admin/bootstrap takes the
// bootstrap or recovery credential instead.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, rt := range h.Routes() {
		mux.HandleFunc(rt.Pattern, rt.handler)
	}
}

// A Route is one admin route and the grant it requires (Tool "" for the
// bootstrap route and for the caller's own whoami and sessions, which any
// authenticated admin may use).
type Route struct {
	Pattern string
	Tool    string
	Action  string
	handler http.HandlerFunc
}

// Routes lists every route Register mounts, in order.
func (h *Handler) Routes() []Route {
	var out []Route
	add := func(pattern, tool string, fn http.HandlerFunc) {
		action := ActionWrite
		if strings.HasPrefix(pattern, "GET ") {
			action = ActionRead
		}
		out = append(out, Route{Pattern: pattern, Tool: tool, Action: action, handler: h.Require(tool, action, fn)})
	}
	self := func(pattern string, fn http.HandlerFunc) {
		out = append(out, Route{Pattern: pattern, handler: h.requireAdmin(fn)})
	}
	out = append(out, Route{Pattern: "POST /v1/admin/bootstrap", handler: h.handleBootstrap})
	self("GET /v1/admin/whoami", h.handleWhoami)
	self("POST /v1/admin/sessions", h.handleMintSession)
	self("DELETE /v1/admin/sessions/current", h.handleRevokeSession)
	add("GET /v1/admin/identities", ToolAdmins, h.handleListIdentities)
	add("GET /v1/admin/identities/{did}", ToolAdmins, h.handleGetIdentity)
	add("PUT /v1/admin/identities/{did}", ToolAdmins, h.handlePutIdentity)
	add("DELETE /v1/admin/identities/{did}", ToolAdmins, h.handleDeleteIdentity)
	add("POST /v1/capabilities", ToolCapabilities, h.handleIssue)
	add("GET /v1/capabilities", ToolCapabilities, h.handleListCapabilities)
	add("GET /v1/capabilities/{hash}", ToolCapabilities, h.handleGetCapability)
	add("POST /v1/capabilities/delegations", ToolCapabilities, h.handleDelegation)
	add("POST /v1/capabilities/revocations", ToolCapabilities, h.handleRevoke)
	add("GET /v1/capabilities/revocations", ToolCapabilities, h.handleListRevocations)
	add("GET /v1/rbac/roles", ToolRBAC, h.handleListRoles)
	add("GET /v1/rbac/roles/{id}", ToolRBAC, h.handleGetRole)
	add("PUT /v1/rbac/roles/{id}", ToolRBAC, h.handlePutRole)
	add("GET /v1/rbac/bindings", ToolRBAC, h.handleListBindings)
	add("GET /v1/rbac/bindings/{id}", ToolRBAC, h.handleGetBinding)
	add("PUT /v1/rbac/bindings/{id}", ToolRBAC, h.handlePutBinding)
	add("GET /v1/principals", ToolPrincipals, h.handleListPrincipals)
	add("PUT /v1/principals/{did}", ToolPrincipals, h.handlePutPrincipal)
	add("GET /v1/principals/{did}", ToolPrincipals, h.handleGetPrincipal)
	add("DELETE /v1/principals/{did}", ToolPrincipals, h.handleDeletePrincipal)
	add("GET /v1/budgets", ToolBudgets, h.handleListBudgets)
	add("PUT /v1/budgets/{scope}", ToolBudgets, h.handlePutBudget)
	add("GET /v1/budgets/{scope}", ToolBudgets, h.handleGetBudget)
	return out
}

// IssueRequest is the body of POST /v1/capabilities.
type IssueRequest struct {
	Subject   string             `json:"subject"`
	Grants    []capability.Grant `json:"grants"`
	ExpiresIn int64              `json:"expires_in_seconds"`
	Audience  string             `json:"audience,omitempty"`
	ReadOnly  bool               `json:"read_only,omitempty"`
}

// TokenResponse is the answer of POST /v1/capabilities.
type TokenResponse struct {
	Token          string `json:"token"`
	CapabilityHash string `json:"capability_hash"`
	Expires        int64  `json:"exp"`
}

func (h *Handler) handleIssue(w http.ResponseWriter, r *http.Request) {
	var req IssueRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	life := time.Duration(req.ExpiresIn) * time.Second
	if req.ExpiresIn <= 0 || life > MaxTokenLifetime {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "expires_in_seconds must be 1 to 2592000"))
		return
	}
	aud := req.Audience
	if aud == "" {
		aud = h.cfg.Issuer.DID().String()
	}
	issueSubject, err := capability.ParseSubject(req.Subject)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	tok, err := capability.Issue(h.cfg.Issuer.Signer(), issueSubject, req.Grants, h.cfg.Now().Add(life),
		&capability.IssueOptions{Audience: aud, ReadOnly: req.ReadOnly})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	now := h.cfg.Now().UTC().Truncate(time.Second)
	rec := storedCapability{IssuedCapability: IssuedCapability{
		CapabilityHash: tok.Hash(), Subject: tok.Subject().String(), Issuer: tok.Issuer().String(), Audience: tok.Audience(),
		Grants: tok.Grants(), ReadOnly: tok.ReadOnly(), IssuedAt: now, ExpiresAt: tok.Expiry().UTC(),
	}, Nonce: tok.Nonce()}
	if err := h.persist(r, KindCapability, tok.Hash(), rec)(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/capabilities", http.StatusCreated, map[string]any{"capability_hash": tok.Hash()}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, TokenResponse{Token: tok.Encode(), CapabilityHash: tok.Hash(), Expires: tok.Expiry().Unix()})
}

// DelegationRequest is the body of POST /v1/capabilities/delegations: a
// delegation chain in capability.ParseChain's encoding.
type DelegationRequest struct {
	Chain string `json:"chain"`
}

// DelegationResponse is the answer for a chain that verifies.
type DelegationResponse struct {
	Valid  bool     `json:"valid"`
	Depth  int      `json:"depth"`
	Hashes []string `json:"capability_hashes"`
	Leaf   string   `json:"subject"`
}

// handleDelegation checks a delegation chain built by its holders (with
// capability.Delegate, which needs each holder's own key) against the
// issuer's trust root, without consulting revocation: a pre-flight check.
func (h *Handler) handleDelegation(w http.ResponseWriter, r *http.Request) {
	var req DelegationRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	chain, err := capability.ParseChain(req.Chain)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := capability.VerifyChain(chain, []identity.DID{h.cfg.Issuer.DID()}, h.cfg.Now()); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	b := DelegationResponse{Valid: true, Depth: len(chain), Leaf: chain.Leaf().Subject().String()}
	for _, t := range chain {
		b.Hashes = append(b.Hashes, t.Hash())
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

// RevokeRequest is the body of POST /v1/capabilities/revocations: exactly
// one of a capability hash (64 lowercase hex) or a token nonce, and an
// optional Unix time the revocation may be forgotten after.
type RevokeRequest struct {
	CapabilityHash string `json:"capability_hash,omitempty"`
	Nonce          string `json:"nonce,omitempty"`
	Until          int64  `json:"until,omitempty"`
}

func (h *Handler) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	var key string
	switch {
	case req.CapabilityHash != "" && req.Nonce == "" && isHex64(req.CapabilityHash):
		key = capability.HashKey(req.CapabilityHash)
	case req.Nonce != "" && req.CapabilityHash == "" && len(req.Nonce) <= 256:
		key = capability.NonceKey(req.Nonce)
	default:
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "give exactly one of capability_hash (64 hex) or nonce"))
		return
	}
	var until time.Time
	if req.Until > 0 {
		until = time.Unix(req.Until, 0)
	}
	if err := h.cfg.Revocations.Revoke(r.Context(), key, until); err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "revocation store unavailable", err))
		return
	}
	if err := h.recordRevocation(r, key, req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/capabilities/revocations", http.StatusOK, map[string]any{"capability_hash": req.CapabilityHash}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true})
}

// recordRevocation records a revocation (listed by GET
// /v1/capabilities/revocations) and marks the issued capabilities it
// revokes. The revocation store is the authority; these records are the
// admin API's view of it.
func (h *Handler) recordRevocation(r *http.Request, key string, req RevokeRequest) error {
	a, _ := ActorFrom(r.Context())
	now := h.cfg.Now().UTC().Truncate(time.Second)
	if err := h.persist(r, KindRevocation, key, Revocation{CapabilityHash: req.CapabilityHash, Nonce: req.Nonce, RevokedAt: now, RevokedBy: a.DID})(); err != nil {
		return err
	}
	caps, err := h.capabilities(r.Context())
	if err != nil {
		return err
	}
	for _, c := range caps {
		if c.Revoked || !(req.CapabilityHash != "" && c.CapabilityHash == req.CapabilityHash || req.Nonce != "" && c.nonce == req.Nonce) {
			continue
		}
		c.Revoked, c.RevokedAt = true, &now
		if err := h.persist(r, KindCapability, c.CapabilityHash, storedCapability{IssuedCapability: c, Nonce: c.nonce})(); err != nil {
			return err
		}
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// RoleRequest is the body of PUT /v1/rbac/roles/{id}.
type RoleRequest struct {
	Permissions []string `json:"permissions"`
}

func (h *Handler) handlePutRole(w http.ResponseWriter, r *http.Request) {
	var req RoleRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	role := capability.Role{ID: r.PathValue("id"), Permissions: req.Permissions}
	if err := h.policy.set(&role, "", nil, h.persist(r, KindRole, role.ID, req)); err != nil {
		talos.WriteError(w, r, asInvalid("invalid role", err))
		return
	}
	if err := h.audit(r, "/v1/rbac/roles/{id}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"role_id": role.ID, "permissions": role.Permissions})
}

// BindingRequest is the body of PUT /v1/rbac/bindings/{id}.
type BindingRequest struct {
	Principal string           `json:"principal_id"`
	Role      string           `json:"role_id"`
	Scope     capability.Scope `json:"scope"`
}

func (h *Handler) handlePutBinding(w http.ResponseWriter, r *http.Request) {
	var req BindingRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	id := r.PathValue("id")
	b := capability.Binding{Principal: req.Principal, Role: req.Role, Scope: req.Scope}
	if err := h.policy.set(nil, id, &b, h.persist(r, KindBinding, id, req)); err != nil {
		talos.WriteError(w, r, asInvalid("invalid binding", err))
		return
	}
	if err := h.audit(r, "/v1/rbac/bindings/{id}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"binding_id": id, "principal_id": req.Principal, "role_id": req.Role})
}

// PrincipalRequest is the body of PUT /v1/principals/{did}.
type PrincipalRequest struct {
	TeamID string `json:"team_id"`
}

// handlePutPrincipal registers an agent: its did:key becomes a key id that
// may sign attested requests.
func (h *Handler) handlePutPrincipal(w http.ResponseWriter, r *http.Request) {
	did, err := identity.ParseDID(r.PathValue("did"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	var req PrincipalRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if req.TeamID == "" || len(req.TeamID) > 128 {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "team_id must be 1 to 128 characters"))
		return
	}
	p := NewPrincipal(did, req.TeamID, h.cfg.Now())
	if err := h.persist(r, KindPrincipal, p.DID, p)(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	h.principals.cache(p)
	if err := h.audit(r, "/v1/principals/{did}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (h *Handler) handleGetPrincipal(w http.ResponseWriter, r *http.Request) {
	p, err := h.principals.Lookup(r.Context(), r.PathValue("did"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if p == nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such principal"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// handleDeletePrincipal unregisters an agent: its key can no longer sign
// requests (on replicas sharing the store, within PrincipalCacheTTL).
// Its capabilities stay valid for other transports until revoked.
func (h *Handler) handleDeletePrincipal(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	existed, err := h.cfg.Store.Delete(r.Context(), KindPrincipal, did)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	h.principals.forget(did)
	if existed {
		h.changed(KindPrincipal)
	}
	if !existed {
		talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such principal"))
		return
	}
	if err := h.audit(r, "/v1/principals/{did}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deleted": true, "did": did})
}

// handlePutBudget sets the budget of a scope: "key:<did>" (a virtual key,
// i.e. one agent) or "team:<id>".
func (h *Handler) handlePutBudget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("scope")
	if !strings.HasPrefix(id, "key:") && !strings.HasPrefix(id, "team:") {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "scope must be key:<did> or team:<id>"))
		return
	}
	var req BudgetRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	sc, err := req.Scope(id)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.persist(r, KindBudget, id, req)(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	h.budgets.Set(sc)
	if err := h.audit(r, "/v1/budgets/{scope}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"scope": id, "limit_usd": budget.USD(sc.Limit), "mode": sc.Mode.String(), "period": sc.Period.String()})
}

// handleGetBudget reports a scope's spend in its current period. The group
// of a key scope is its team: the registered principal's, or ?team=.
func (h *Handler) handleGetBudget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("scope")
	s, ok := h.budgets.Get(id)
	if !ok {
		talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no budget for this scope"))
		return
	}
	group := id
	if did, ok := strings.CutPrefix(id, "key:"); ok {
		team := r.URL.Query().Get("team")
		if team == "" {
			p, err := h.principals.Lookup(r.Context(), did)
			if err != nil {
				talos.WriteError(w, r, err)
				return
			}
			if p == nil {
				talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "the key is not registered: give its team as ?team="))
				return
			}
			team = p.TeamID
		}
		group = TeamScope(team)
	}
	u, err := h.cfg.Budget.Usage(r.Context(), group, s)
	if err != nil && !errors.Is(err, budget.ErrUnknownGroup) {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "budget store unavailable", err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"scope": id, "limit_usd": budget.USD(u.Limit), "used_usd": budget.USD(u.Spent),
		"reserved_usd": budget.USD(u.Reserved), "remaining_usd": budget.USD(u.Remaining), "mode": s.Mode.String(),
	})
}

// audit records an admin action in the audit log. If the log cannot
// record it, the action is reported as failed (it has been applied: the
// caller retries or investigates; the log's durability is what failed).
func (h *Handler) audit(r *http.Request, template string, status int, meta map[string]any) error {
	a, ok := ActorFrom(r.Context())
	if !ok {
		return contracts.New(contracts.CodeInternal, "admin action without an authenticated admin")
	}
	return h.auditAs(r, a, template, status, meta)
}

// auditAs records an admin action of actor a: principal_id is its DID,
// meta.admin_auth_mode how it authenticated, and meta.tool/action the
// grant the route required.
func (h *Handler) auditAs(r *http.Request, a Actor, template string, status int, meta map[string]any) error {
	m := map[string]any{"admin_auth_mode": a.AuthMode}
	for k, v := range meta {
		if v != "" {
			m[k] = v
		}
	}
	ev, err := h.cfg.Events.Draft(r, audit.Decision{
		RequestID:    contracts.NewUUIDv7(),
		SurfaceID:    SurfaceID,
		TemplatePath: template,
		Status:       status,
		Principal:    a.auditPrincipal(),
		Meta:         m,
	})
	if err != nil {
		return err
	}
	_, err = h.cfg.Audit.Append(r.Context(), ev)
	return err
}

// persist returns the step that stores an admin document durably; handlers
// run it after validating and before applying the change.
func (h *Handler) persist(r *http.Request, kind, id string, v any) func() error {
	return func() error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := h.cfg.Store.Put(r.Context(), Doc{Kind: kind, ID: id, Doc: raw}); err != nil {
			return err
		}
		h.changed(kind)
		return nil
	}
}

// asInvalid reports a validation failure as TALOS_INVALID_INPUT, and passes
// a store failure (already a contract error) through.
func asInvalid(msg string, err error) error {
	if contracts.CodeOf(err) == contracts.CodeInternal {
		return err
	}
	return contracts.Wrap(contracts.CodeInvalidInput, msg, err)
}
