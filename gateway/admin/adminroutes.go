package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
	"github.com/talosgo/talos/identity"
)

// BootstrapRequest is the body of POST /v1/admin/bootstrap.
type BootstrapRequest struct {
	DID string `json:"did"`
}

// bootstrapSpentSuffix names the marker, beside the bootstrap hash, whose
// creation spends the bootstrap credential (one winner across replicas).
const bootstrapSpentSuffix = "/spent"

// handleBootstrap creates an owner with the bootstrap credential (only
// while no owner exists; the first success spends it) or with a recovery
// credential (even if owners exist; the recovery file is spent).
func (h *Handler) handleBootstrap(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(tok, BootstrapPrefix) || len(tok) > 128 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
		talos.WriteError(w, r, authRequired())
		return
	}
	var req BootstrapRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	did, err := identity.ParseDID(req.DID)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	via, err := h.bootstrapVia(r, tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
		talos.WriteError(w, r, err)
		return
	}
	id, err := h.PutIdentity(ctx, did.String(), RoleOwner, via)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	actor := Actor{DID: id.DID, Role: RoleOwner, AuthMode: via}
	if err := h.auditAs(r, actor, "/v1/admin/bootstrap", http.StatusCreated, map[string]any{"via": via, "target": id.DID, "role": RoleOwner}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"did": id.DID, "role": RoleOwner})
}

// bootstrapVia checks a talos_admin_ credential: "bootstrap" when it is the
// unspent bootstrap credential and no owner exists (spending it now),
// "recovery" when the recovery file admits it (removing the file).
func (h *Handler) bootstrapVia(r *http.Request, tok string) (string, error) {
	ctx := r.Context()
	if h.cfg.RecoveryFile != "" && len(h.cfg.RecoveryKey) != 0 {
		if err := claimRecovery(h.cfg.RecoveryFile, h.cfg.RecoveryKey, tok, h.cfg.Now()); err == nil {
			return "recovery", nil
		}
	}
	if h.cfg.Bootstrap == nil {
		return "", authRequired()
	}
	stored, err := h.cfg.Bootstrap.Get(ctx, h.cfg.BootstrapID)
	if errors.Is(err, contracts.ErrNotFound) {
		return "", authRequired()
	}
	if err != nil {
		return "", contracts.Wrap(contracts.CodeInternal, "bootstrap credential store unavailable", err).WithRetryable(true)
	}
	sum := sha256.Sum256([]byte(tok))
	if len(stored) != len(sum) || subtle.ConstantTimeCompare(stored, sum[:]) != 1 {
		return "", authRequired()
	}
	if _, err := h.cfg.Bootstrap.Get(ctx, h.cfg.BootstrapID+bootstrapSpentSuffix); err == nil {
		return "", authRequired() // spent
	} else if !errors.Is(err, contracts.ErrNotFound) {
		return "", contracts.Wrap(contracts.CodeInternal, "bootstrap credential store unavailable", err).WithRetryable(true)
	}
	n, err := h.owners(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", authRequired()
	}
	created, err := h.cfg.Bootstrap.Create(ctx, h.cfg.BootstrapID+bootstrapSpentSuffix, []byte(h.cfg.Now().UTC().Format(time.RFC3339)))
	if err != nil {
		return "", contracts.Wrap(contracts.CodeInternal, "bootstrap credential store unavailable", err).WithRetryable(true)
	}
	if !created {
		return "", authRequired() // another request spent it first
	}
	return "bootstrap", nil
}

// BootstrapSpent reports whether the bootstrap credential stored under id
// in store has been spent (an owner was created with it).
func BootstrapSpent(ctx context.Context, store BootstrapStore, id string) (bool, error) {
	_, err := store.Get(ctx, id+bootstrapSpentSuffix)
	if errors.Is(err, contracts.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// WhoamiResponse is the answer of GET /v1/admin/whoami (ExpiresAt: a
// session's expiry).
type WhoamiResponse struct {
	DID         string       `json:"did"`
	Role        string       `json:"role"`
	AuthMode    string       `json:"auth_mode"`
	Permissions []Permission `json:"permissions"`
	ExpiresAt   string       `json:"expires_at,omitempty"`
}

func (h *Handler) handleWhoami(w http.ResponseWriter, r *http.Request) {
	a, _ := ActorFrom(r.Context())
	resp := WhoamiResponse{DID: a.DID, Role: a.Role, AuthMode: a.AuthMode, Permissions: RolePermissions(a.Role)}
	if a.AuthMode == AuthSession {
		resp.ExpiresAt = a.ExpiresAt.UTC().Format(time.RFC3339)
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

func (h *Handler) handleListIdentities(w http.ResponseWriter, r *http.Request) {
	page, err := parsePage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	ids, err := h.identities(r.Context())
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writePage(w, page, ids, func(id Identity) string { return id.DID })
}

func (h *Handler) handleGetIdentity(w http.ResponseWriter, r *http.Request) {
	id, err := h.identity(r.Context(), r.PathValue("did"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if id == nil {
		talos.WriteError(w, r, errNoIdentity)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, id)
}

// IdentityRequest is the body of PUT /v1/admin/identities/{did}.
type IdentityRequest struct {
	Role string `json:"role"`
}

func (h *Handler) handlePutIdentity(w http.ResponseWriter, r *http.Request) {
	var req IdentityRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	a, _ := ActorFrom(r.Context())
	id, err := h.PutIdentity(r.Context(), r.PathValue("did"), req.Role, a.DID)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/admin/identities/{did}", http.StatusOK, map[string]any{"target": id.DID, "role": id.Role}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, id)
}

func (h *Handler) handleDeleteIdentity(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	if err := h.deleteIdentity(r.Context(), did); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/admin/identities/{did}", http.StatusOK, map[string]any{"target": did}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deleted": true, "did": did})
}

// Session lifetimes of POST /v1/admin/sessions.
const (
	MinSessionTTL     = 60 * time.Second
	MaxSessionTTL     = 8 * time.Hour
	DefaultSessionTTL = 15 * time.Minute
)

// SessionRequest is the body of POST /v1/admin/sessions: a lifetime (60
// to 28800 s, default 900) and optionally a role narrower than the
// admin's.
type SessionRequest struct {
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
	Role       string `json:"role,omitempty"`
}

// SessionResponse is the answer of POST /v1/admin/sessions; Token is
// shown once (only its SHA-256 is stored).
type SessionResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	DID       string `json:"did"`
	Role      string `json:"role"`
}

func (h *Handler) handleMintSession(w http.ResponseWriter, r *http.Request) {
	a, _ := ActorFrom(r.Context())
	if a.AuthMode != AuthAttested {
		talos.WriteError(w, r, contracts.New(contracts.CodeRBACDenied, "a session cannot mint sessions: sign the request"))
		return
	}
	var req SessionRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	ttl := DefaultSessionTTL
	if req.TTLSeconds != 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
		if ttl < MinSessionTTL || ttl > MaxSessionTTL {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "ttl_seconds must be 60 to 28800"))
			return
		}
	}
	role := a.Role
	if req.Role != "" {
		if !roleKnown(req.Role) {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "role must be owner, operator, auditor or viewer"))
			return
		}
		if !roleCovers(a.Role, req.Role) {
			talos.WriteError(w, r, contracts.New(contracts.CodeRBACDenied, "a session cannot have more rights than its admin"))
			return
		}
		role = req.Role
	}
	resp, err := h.IssueSession(r.Context(), a.DID, role, ttl)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/admin/sessions", http.StatusCreated, map[string]any{"role": role}); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, resp)
}

// IssueSession makes a session token of the admin identity did acting
// with role for ttl and stores its SHA-256 (never the token): the work of
// POST /v1/admin/sessions, for set-up code and tests. The role must be
// one the identity's role covers.
func (h *Handler) IssueSession(ctx context.Context, did, role string, ttl time.Duration) (SessionResponse, error) {
	id, err := h.identity(ctx, did)
	if err != nil {
		return SessionResponse{}, err
	}
	if id == nil {
		return SessionResponse{}, errNoIdentity
	}
	if !roleKnown(role) || !roleCovers(id.Role, role) {
		return SessionResponse{}, contracts.New(contracts.CodeRBACDenied, "a session cannot have more rights than its admin")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return SessionResponse{}, contracts.Wrap(contracts.CodeInternal, "no randomness", err)
	}
	tok := SessionPrefix + contracts.EncodeBase64URL(raw)
	clear(raw)
	now := h.cfg.Now().UTC()
	s := Session{DID: did, Role: role, CreatedAt: now.Truncate(time.Second), ExpiresAt: now.Add(ttl).Truncate(time.Second)}
	doc, err := json.Marshal(s)
	if err != nil {
		return SessionResponse{}, err
	}
	if err := h.cfg.Store.Put(ctx, Doc{Kind: KindSession, ID: sessionHash(tok), Doc: doc}); err != nil {
		return SessionResponse{}, err
	}
	h.changed(KindSession)
	return SessionResponse{Token: tok, ExpiresAt: s.ExpiresAt.Format(time.RFC3339), DID: did, Role: role}, nil
}

func (h *Handler) handleRevokeSession(w http.ResponseWriter, r *http.Request) {
	a, _ := ActorFrom(r.Context())
	if a.AuthMode != AuthSession {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "present the session to revoke as the bearer"))
		return
	}
	if _, err := h.cfg.Store.Delete(r.Context(), KindSession, a.SessionHash); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := h.audit(r, "/v1/admin/sessions/current", http.StatusOK, nil); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true})
}

func roleKnown(role string) bool {
	for _, r := range Roles() {
		if r == role {
			return true
		}
	}
	return false
}
