package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// maxAPIBody bounds the JSON body of every kernel, A2A and audit API request.
// Larger bodies get 413-class TALOS_INVALID_INPUT and nothing is applied.
const maxAPIBody = 64 << 10

// decodeBody reads a JSON body of at most maxAPIBody bytes into v with the
// strict rules of contracts.UnmarshalStrict: duplicate keys, unknown or
// mis-cased fields, null, floats and trailing data are refused; so are
// objects, at any depth (maps included), with two keys equal under case
// folding (contracts.CheckCaseFold), the rule of every surface.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		return contracts.Errorf(contracts.CodeInvalidInput, "request body too large or unreadable")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := contracts.CheckCaseFold(body); err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "invalid request body", err)
	}
	if err := contracts.UnmarshalStrict(body, v); err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "invalid request body", err)
	}
	return nil
}

func (c *core) mountKernel(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc) {
	mux.Handle("POST /v1/authorize", c.attester.Wrap(c.registered(c.handleAuthorize)))
	mux.HandleFunc("POST /v1/capabilities", admin(c.handleIssue))
	mux.HandleFunc("POST /v1/capabilities/delegations", admin(c.handleDelegation))
	mux.HandleFunc("POST /v1/capabilities/revocations", admin(c.handleRevoke))
	mux.HandleFunc("PUT /v1/rbac/roles/{id}", admin(c.handlePutRole))
	mux.HandleFunc("PUT /v1/rbac/bindings/{id}", admin(c.handlePutBinding))
	mux.HandleFunc("PUT /v1/principals/{did}", admin(c.handlePutPrincipal))
	mux.HandleFunc("GET /v1/principals/{did}", admin(c.handleGetPrincipal))
	mux.HandleFunc("DELETE /v1/principals/{did}", admin(c.handleDeletePrincipal))
	mux.HandleFunc("GET /v1/identity", c.handleIdentity)
	mux.HandleFunc("PUT /v1/budgets/{scope}", admin(c.handlePutBudget))
	mux.HandleFunc("GET /v1/budgets/{scope}", admin(c.handleGetBudget))
}

type authorizeRequest struct {
	Capability string            `json:"capability"`
	Tool       string            `json:"tool"`
	Action     string            `json:"action"`
	ArgsDigest string            `json:"args_digest,omitempty"`
	Scope      *capability.Scope `json:"scope,omitempty"`
}

type decisionBody struct {
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

func outcomeBody(out talos.Outcome) decisionBody {
	d := out.Decision
	b := decisionBody{
		Allowed: out.Allowed, Reason: string(d.Reason), Code: out.Code, CapabilityHash: d.CapabilityHash,
		Principal: d.Principal.String(), Tool: d.Tool, Action: d.Action,
		AuditIndex: out.Receipt.Index, EventHash: out.Receipt.EventHash,
	}
	if out.Allowed {
		g := d.Grant
		b.Grant = &g
	}
	return b
}

// handleAuthorize answers "may the attested principal do tool/action with
// this capability now?" through the Kernel (rate limit and audit included).
// A denial is a 200 answer with allowed=false: the question was answered.
func (c *core) handleAuthorize(w http.ResponseWriter, r *http.Request, p *principal) {
	var req authorizeRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	did, _ := identity.ParseDID(p.DID)
	creq := capability.Request{Capability: req.Capability, Principal: did, Tool: req.Tool, Action: req.Action, ArgsDigest: req.ArgsDigest}
	if req.Scope != nil {
		creq.Scope = *req.Scope
	}
	out, err := c.kernel.Do(r.Context(), talos.Call{
		Request: creq, HTTP: r, SurfaceID: opAuthorize, TemplatePath: "/v1/authorize", Team: p.TeamID,
	}, func(context.Context, capability.Decision) (int64, int, error) { return 0, http.StatusOK, nil })
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if out.Code == contracts.CodeRateLimited {
		talos.WriteError(w, r, contracts.Errorf(out.Code, "rate limited").WithRetryable(true))
		return
	}
	writeJSON(w, http.StatusOK, outcomeBody(out))
}

type issueRequest struct {
	Subject   string             `json:"subject"`
	Grants    []capability.Grant `json:"grants"`
	ExpiresIn int64              `json:"expires_in_seconds"`
	Audience  string             `json:"audience,omitempty"`
	ReadOnly  bool               `json:"read_only,omitempty"`
}

type tokenBody struct {
	Token          string `json:"token"`
	CapabilityHash string `json:"capability_hash"`
	Expires        int64  `json:"exp"`
}

// maxTokenLifetime bounds issued tokens.
const maxTokenLifetime = 30 * 24 * time.Hour

func (c *core) handleIssue(w http.ResponseWriter, r *http.Request) {
	var req issueRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	life := time.Duration(req.ExpiresIn) * time.Second
	if req.ExpiresIn <= 0 || life > maxTokenLifetime {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "expires_in_seconds must be 1 to 2592000"))
		return
	}
	aud := req.Audience
	if aud == "" {
		aud = c.wallet.DID().String()
	}
	tok, err := capability.Issue(c.wallet, req.Subject, req.Grants, time.Now().Add(life),
		capability.IssueOptions{Audience: aud, ReadOnly: req.ReadOnly})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := c.auditAdmin(r, "/v1/capabilities", http.StatusCreated, map[string]any{"capability_hash": tok.Hash()}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenBody{Token: tok.Encode(), CapabilityHash: tok.Hash(), Expires: tok.Expiry().Unix()})
}

type delegationRequest struct {
	Chain string `json:"chain"`
}

type delegationBody struct {
	Valid  bool     `json:"valid"`
	Depth  int      `json:"depth"`
	Hashes []string `json:"capability_hashes"`
	Leaf   string   `json:"subject"`
}

// handleDelegation checks a delegation chain built by its holders (with
// capability.Delegate, which needs each holder's own key) against this
// server's trust root, without consulting revocation: a pre-flight check.
func (c *core) handleDelegation(w http.ResponseWriter, r *http.Request) {
	var req delegationRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	chain, err := capability.ParseChain(req.Chain)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := capability.VerifyChain(chain, []identity.DID{c.wallet.DID()}, time.Now()); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	b := delegationBody{Valid: true, Depth: len(chain), Leaf: chain.Leaf().Subject().String()}
	for _, t := range chain {
		b.Hashes = append(b.Hashes, t.Hash())
	}
	writeJSON(w, http.StatusOK, b)
}

type revokeRequest struct {
	CapabilityHash string `json:"capability_hash,omitempty"`
	Nonce          string `json:"nonce,omitempty"`
	Until          int64  `json:"until,omitempty"`
}

func (c *core) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	if err := decodeBody(w, r, &req); err != nil {
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
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "give exactly one of capability_hash (64 hex) or nonce"))
		return
	}
	var until time.Time
	if req.Until > 0 {
		until = time.Unix(req.Until, 0)
	}
	if err := c.revocations.Revoke(r.Context(), key, until); err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "revocation store unavailable", err))
		return
	}
	if err := c.auditAdmin(r, "/v1/capabilities/revocations", http.StatusOK, map[string]any{"capability_hash": req.CapabilityHash}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
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

type roleRequest struct {
	Permissions []string `json:"permissions"`
}

func (c *core) handlePutRole(w http.ResponseWriter, r *http.Request) {
	var req roleRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	role := capability.Role{ID: r.PathValue("id"), Permissions: req.Permissions}
	if err := c.rbac.set(&role, nil, c.persist(r, docRole, role.ID, req)); err != nil {
		talos.WriteError(w, r, asInvalid("invalid role", err))
		return
	}
	if err := c.auditAdmin(r, "/v1/rbac/roles/{id}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"role_id": role.ID, "permissions": role.Permissions})
}

type bindingRequest struct {
	Principal string           `json:"principal_id"`
	Role      string           `json:"role_id"`
	Scope     capability.Scope `json:"scope"`
}

func (c *core) handlePutBinding(w http.ResponseWriter, r *http.Request) {
	var req bindingRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	b := &namedBinding{r.PathValue("id"), capability.Binding{Principal: req.Principal, Role: req.Role, Scope: req.Scope}}
	if err := c.rbac.set(nil, b, c.persist(r, docBinding, b.ID, req)); err != nil {
		talos.WriteError(w, r, asInvalid("invalid binding", err))
		return
	}
	if err := c.auditAdmin(r, "/v1/rbac/bindings/{id}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"binding_id": b.ID, "principal_id": req.Principal, "role_id": req.Role})
}

type principalRequest struct {
	TeamID string `json:"team_id"`
}

// handlePutPrincipal registers an agent: its did:key becomes a key id that
// may sign attested requests.
func (c *core) handlePutPrincipal(w http.ResponseWriter, r *http.Request) {
	did, err := identity.ParseDID(r.PathValue("did"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	var req principalRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if req.TeamID == "" || len(req.TeamID) > 128 {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "team_id must be 1 to 128 characters"))
		return
	}
	p := &principal{ID: did.String(), DID: did.String(), TeamID: req.TeamID, CreatedAt: time.Now().UTC(), pub: did.PublicKey()}
	if err := c.persist(r, docPrincipal, p.DID, p)(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	c.principals.put(p)
	if err := c.auditAdmin(r, "/v1/principals/{did}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (c *core) handleGetPrincipal(w http.ResponseWriter, r *http.Request) {
	p, err := c.principals.lookup(r.Context(), r.PathValue("did"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if p == nil {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeNotFound, "no such principal"))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handleDeletePrincipal unregisters an agent: its key can no longer sign
// requests (on other replicas sharing PostgreSQL, within principalCacheTTL).
// Its capabilities stay valid for other transports until revoked.
func (c *core) handleDeletePrincipal(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	existed, err := c.admin.del(r.Context(), docPrincipal, did)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	c.principals.forget(did)
	if !existed {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeNotFound, "no such principal"))
		return
	}
	if err := c.auditAdmin(r, "/v1/principals/{did}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "did": did})
}

// servedOpcodes returns the opcode of every attested route this server
// serves (the MCP gateway and the LLM proxy only when enabled).
func (c *core) servedOpcodes() map[string]string {
	ops := c.routes.Opcodes()
	for pattern, op := range ops {
		if op == opMCPGateway && c.gateway == nil || op == opLLM && c.llm == nil {
			delete(ops, pattern)
		}
	}
	return ops
}

// handleIdentity publishes the server's DID, the audit log's verifier key
// (everything an auditor needs to check checkpoints and proofs) and the
// opcode of every attested route (what a client signs).
func (c *core) handleIdentity(w http.ResponseWriter, r *http.Request) {
	vkey, err := audit.VerifierKey(logOrigin, c.wallet.PublicKey())
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"did": c.wallet.DID().String(), "audit_origin": logOrigin, "audit_verifier_key": vkey,
		"version": talos.Version, "protocol_range": talos.ProtocolRange,
		// The opcode each attested route's signature must cover.
		"attested_routes": c.servedOpcodes(),
	})
}

// auditAdmin records an admin action in the audit log. If the log cannot
// record it, the action is reported as failed (it has been applied: the
// caller retries or investigates; the log's durability is what failed).
func (c *core) auditAdmin(r *http.Request, template string, status int, meta map[string]any) error {
	ev, err := c.events.Build(r, audit.Decision{
		RequestID:    contracts.NewUUIDv7(),
		SurfaceID:    "admin",
		TemplatePath: template,
		Status:       status,
		Principal:    audit.BearerPrincipal("admin", "admin"),
		Meta:         meta,
	})
	if err != nil {
		return err
	}
	_, err = c.log.Append(r.Context(), ev)
	return err
}

type budgetRequest struct {
	LimitUSD string `json:"limit_usd"`
	Mode     string `json:"mode"`
	Period   string `json:"period"`
}

// parsePeriod reads "daily", "monthly", "lifetime" or "rolling:<duration>".
func parsePeriod(s string) (budget.Period, error) {
	switch s {
	case "", "monthly":
		return budget.Monthly(), nil
	case "daily":
		return budget.Daily(), nil
	case "lifetime":
		return budget.Lifetime(), nil
	}
	if w, ok := strings.CutPrefix(s, "rolling:"); ok {
		d, err := time.ParseDuration(w)
		if err == nil && d >= time.Minute && d <= 366*24*time.Hour {
			return budget.Rolling(d), nil
		}
	}
	return budget.Period{}, contracts.Errorf(contracts.CodeInvalidInput, `period must be daily, monthly, lifetime or rolling:<duration>`)
}

// handlePutBudget sets the budget of a scope: "key:<did>" (a virtual key,
// i.e. one agent) or "team:<id>". MCP and LLM calls reserve against both.
func (c *core) handlePutBudget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("scope")
	if !strings.HasPrefix(id, "key:") && !strings.HasPrefix(id, "team:") {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "scope must be key:<did> or team:<id>"))
		return
	}
	var req budgetRequest
	if err := decodeBody(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	sc, err := budgetScope(id, req)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := c.persist(r, docBudget, id, req)(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	c.budgets.set(sc)
	if err := c.auditAdmin(r, "/v1/budgets/{scope}", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"scope": id, "limit_usd": budget.USD(sc.Limit), "mode": sc.Mode.String(), "period": sc.Period.String()})
}

// handleGetBudget reports a scope's spend in its current period. The group
// of a key scope is its team: the registered principal's, or ?team=.
func (c *core) handleGetBudget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("scope")
	s, ok := c.budgets.get(id)
	if !ok {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeNotFound, "no budget for this scope"))
		return
	}
	group := id
	if did, ok := strings.CutPrefix(id, "key:"); ok {
		team := r.URL.Query().Get("team")
		if team == "" {
			p, err := c.principals.lookup(r.Context(), did)
			if err != nil {
				talos.WriteError(w, r, err)
				return
			}
			if p == nil {
				talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "the key is not registered: give its team as ?team="))
				return
			}
			team = p.TeamID
		}
		group = teamScope(team)
	}
	u, err := c.budget.Usage(r.Context(), group, s)
	if err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "budget store unavailable", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"scope": id, "limit_usd": budget.USD(u.Limit), "used_usd": budget.USD(u.Spent),
		"reserved_usd": budget.USD(u.Reserved), "remaining_usd": budget.USD(u.Remaining), "mode": s.Mode.String(),
	})
}

// budgetScope builds the budget of scope id from an admin request.
func budgetScope(id string, req budgetRequest) (budget.Scope, error) {
	limit, err := budget.ParseUSD(req.LimitUSD)
	if err != nil {
		return budget.Scope{}, err
	}
	mode, err := budget.ParseMode(req.Mode)
	if err != nil {
		return budget.Scope{}, err
	}
	period, err := parsePeriod(req.Period)
	if err != nil {
		return budget.Scope{}, err
	}
	s := budget.Scope{ID: id, Limit: limit, Mode: mode, Period: period}
	if err := s.Validate(); err != nil {
		return budget.Scope{}, err
	}
	return s, nil
}

// persist returns the step that stores an admin document durably; handlers
// run it after validating and before applying the change.
func (c *core) persist(r *http.Request, kind, id string, v any) func() error {
	return func() error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return c.admin.put(r.Context(), adminDoc{Kind: kind, ID: id, Doc: raw})
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
