package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// The admin tools: the surfaces an admin identity's role grants "read"
// and "write" on. A route's (tool, action) is declared where it is
// mounted ([Handler.Require]).
const (
	ToolPrincipals     = "admin.principals"
	ToolRBAC           = "admin.rbac"
	ToolCapabilities   = "admin.capabilities"
	ToolBudgets        = "admin.budgets"
	ToolConfig         = "admin.config"
	ToolSecrets        = "admin.secrets"
	ToolAudit          = "admin.audit"
	ToolStats          = "admin.stats"
	ToolA2A            = "admin.a2a"
	ToolAdmins         = "admin.admins"
	ToolLLMUpstreams   = "admin.llm.upstreams"
	ToolLLMModelGroups = "admin.llm.model-groups"
	ToolMCPServers     = "admin.mcp.servers"
	ToolApprovals      = "admin.approvals"
)

// The admin actions: GET routes read, every other method writes.
const (
	ActionRead  = "read"
	ActionWrite = "write"
)

// Tools lists every admin tool, in a stable order.
func Tools() []string {
	return []string{ToolPrincipals, ToolRBAC, ToolCapabilities, ToolBudgets, ToolConfig, ToolSecrets,
		ToolAudit, ToolStats, ToolA2A, ToolAdmins, ToolLLMUpstreams, ToolLLMModelGroups, ToolMCPServers, ToolApprovals}
}

// The built-in admin roles.
const (
	// RoleOwner may read and write every admin tool.
	RoleOwner = "owner"
	// RoleOperator may read and write every tool but admin.admins and
	// admin.secrets, which it may only read.
	RoleOperator = "operator"
	// RoleAuditor may read admin.audit and admin.stats.
	RoleAuditor = "auditor"
	// RoleViewer may read every tool but admin.audit and admin.secrets.
	RoleViewer = "viewer"
)

// Roles lists the built-in admin roles, most powerful first.
func Roles() []string { return []string{RoleOwner, RoleOperator, RoleAuditor, RoleViewer} }

// rolePermissions returns the RBAC permissions ("<tool>.<action>") of a
// built-in role.
func rolePermissions(role string) []string {
	var perms []string
	for _, tool := range Tools() {
		read, write := false, false
		switch role {
		case RoleOwner:
			read, write = true, true
		case RoleOperator:
			read, write = true, tool != ToolAdmins && tool != ToolSecrets
		case RoleAuditor:
			read = tool == ToolAudit || tool == ToolStats
		case RoleViewer:
			read = tool != ToolAudit && tool != ToolSecrets
		}
		if read {
			perms = append(perms, tool+"."+ActionRead)
		}
		if write {
			perms = append(perms, tool+"."+ActionWrite)
		}
	}
	return perms
}

// adminRBAC is the compiled policy of the built-in roles: one binding per
// role, principal "role:<name>", global scope (capability.RBAC's compile
// and match path, so admin grants follow the same permission rules as
// agents').
var adminRBAC = func() *capability.RBAC {
	var cfg capability.RBACConfig
	for _, role := range Roles() {
		cfg.Roles = append(cfg.Roles, capability.Role{ID: role, Permissions: rolePermissions(role)})
		cfg.Bindings = append(cfg.Bindings, capability.Binding{Principal: "role:" + role, Role: role, Scope: capability.Scope{Type: capability.ScopeGlobal}})
	}
	rb, err := capability.NewRBAC(cfg)
	if err != nil {
		panic("admin: built-in roles do not compile: " + err.Error())
	}
	return rb
}()

// RoleAllows reports whether a built-in role grants action on tool; an
// unknown role grants nothing.
func RoleAllows(role, tool, action string) bool {
	if !slices.Contains(Roles(), role) {
		return false
	}
	ok, _ := adminRBAC.CheckTool("role:"+role, tool, action, capability.Scope{Type: capability.ScopeGlobal})
	return ok
}

// A Permission is one tool and the actions a role grants on it.
type Permission struct {
	Tool    string   `json:"tool"`
	Actions []string `json:"actions"`
}

// RolePermissions lists what a built-in role grants, tool by tool.
func RolePermissions(role string) []Permission {
	out := []Permission{}
	for _, tool := range Tools() {
		var acts []string
		for _, a := range []string{ActionRead, ActionWrite} {
			if RoleAllows(role, tool, a) {
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			out = append(out, Permission{Tool: tool, Actions: acts})
		}
	}
	return out
}

// roleCovers reports whether every grant of narrow is also one of wide.
func roleCovers(wide, narrow string) bool {
	for _, tool := range Tools() {
		for _, a := range []string{ActionRead, ActionWrite} {
			if RoleAllows(narrow, tool, a) && !RoleAllows(wide, tool, a) {
				return false
			}
		}
	}
	return true
}

// KindIdentity is the document kind of an admin identity; KindSession of
// an admin session (stored by the SHA-256 of its token).
const (
	KindIdentity = "admin_identity"
	KindSession  = "admin_session"
)

// An Identity is an admin: a did:key whose attested requests (opcode
// "admin") the admin routes accept with the grants of its role. Admin
// identities are not agent principals.
type Identity struct {
	DID       string    `json:"did"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// The ways an admin request is authenticated ([Actor].AuthMode).
const (
	AuthAttested = "attested"
	AuthSession  = "session"
)

// An Actor is the authenticated admin of a request: its DID, the role its
// request acts with (a session's may be narrower than the identity's) and
// how it was authenticated.
type Actor struct {
	DID      string
	Role     string
	AuthMode string
	// SessionHash is the hex SHA-256 of the presented session token and
	// ExpiresAt its expiry (session mode only).
	SessionHash string
	ExpiresAt   time.Time
}

type actorKey struct{}

// ActorFrom returns the admin of a request that [Handler.Require]
// admitted.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// auditPrincipal is the audit principal of an admin action: the acting
// admin's DID. The audit event schema knows two authenticated modes;
// an attested admin is "signed" (its DID is the signer key id) and a
// session is "bearer". meta.admin_auth_mode says attested or session.
func (a Actor) auditPrincipal() audit.Principal {
	if a.AuthMode == AuthAttested {
		return audit.SignedPrincipal(a.DID, SurfaceID, a.DID)
	}
	return audit.BearerPrincipal(a.DID, SurfaceID)
}

// AuditMetaKeys are the meta keys admin audit events record (beside
// capability_hash, tool and action); add them to the EventBuilder's
// allowlist of surface "admin".
func AuditMetaKeys() []string {
	return []string{"capability_hash", "tool", "action", "admin_auth_mode", "via", "target", "role"}
}

// SessionPrefix starts every admin session token.
const SessionPrefix = "talos_session_"

// ActionOf is the action of a request's method: GET (and HEAD) read,
// every other method writes.
func ActionOf(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return ActionRead
	}
	return ActionWrite
}

// Require returns next behind admin authentication and the grant of
// (tool, action): an attested request (opcode "admin") signed by an admin
// identity's did:key, or "Authorization: Bearer talos_session_..." of a
// live session. Anything else is answered 401 AUTH_INVALID; an admin
// whose role lacks the grant, 403 RBAC_DENIED; an unknown tool or action
// denies every request. A store that does not answer denies (retryable
// INTERNAL). next sees the [Actor] in its context ([ActorFrom]).
func (h *Handler) Require(tool, action string, next http.HandlerFunc) http.HandlerFunc {
	known := slices.Contains(Tools(), tool) && (action == ActionRead || action == ActionWrite)
	return func(w http.ResponseWriter, r *http.Request) {
		actor, err := h.authenticate(r)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeAuthInvalid {
				w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
			}
			talos.WriteError(w, r, err)
			return
		}
		if !known || !RoleAllows(actor.Role, tool, action) {
			talos.WriteError(w, r, contracts.New(contracts.CodeRBACDenied, "the admin role does not grant this"))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	}
}

// RequireTool is [Handler.Require] with the action of the request's
// method ([ActionOf]): the wrapper for a package that registers several
// routes of one tool behind one function.
func (h *Handler) RequireTool(tool string) func(http.HandlerFunc) http.HandlerFunc {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h.Require(tool, ActionOf(r), next)(w, r)
		}
	}
}

// Allowed authenticates r and reports whether its admin may perform
// action on tool (for packages that take a predicate, such as the audit
// API's entry readers). Any failure is false.
func (h *Handler) Allowed(r *http.Request, tool, action string) bool {
	actor, err := h.authenticate(r)
	return err == nil && RoleAllows(actor.Role, tool, action)
}

func authRequired() error {
	return contracts.New(contracts.CodeAuthInvalid, "admin authentication required")
}

// authenticate finds the admin of r: a session bearer, or an attestation
// by an admin identity.
func (h *Handler) authenticate(r *http.Request) (Actor, error) {
	if authz := r.Header.Get("Authorization"); authz != "" {
		tok, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || !strings.HasPrefix(tok, SessionPrefix) || len(tok) > 256 {
			return Actor{}, authRequired()
		}
		return h.sessionActor(r.Context(), tok)
	}
	if r.Header.Get(identity.HeaderSignature) == "" {
		return Actor{}, authRequired()
	}
	att, err := h.attest.Verify(r)
	if err != nil {
		return Actor{}, err
	}
	id, err := h.identity(r.Context(), att.DID.String())
	if err != nil {
		return Actor{}, err
	}
	if id == nil {
		return Actor{}, authRequired()
	}
	return Actor{DID: id.DID, Role: id.Role, AuthMode: AuthAttested}, nil
}

// identity reads an admin identity from the store (not a cache: a role
// change or deletion on another replica applies at once), or nil.
func (h *Handler) identity(ctx context.Context, did string) (*Identity, error) {
	if !strings.HasPrefix(did, "did:key:z") || len(did) > maxKeyIDLen {
		return nil, nil
	}
	raw, ok, err := h.cfg.Store.Get(ctx, KindIdentity, did)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin identities unavailable", err).WithRetryable(true)
	}
	if !ok {
		return nil, nil
	}
	var id Identity
	if err := json.Unmarshal(raw, &id); err != nil || id.DID != did || !slices.Contains(Roles(), id.Role) {
		return nil, contracts.New(contracts.CodeInternal, "admin identities hold a bad record")
	}
	return &id, nil
}

// identityKeys resolves attestation key ids to admin identities' keys.
type identityKeys struct{ h *Handler }

func (k identityKeys) ResolveKey(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
	id, err := k.h.identity(ctx, keyID)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, contracts.New(contracts.CodeAuthInvalid, "unknown key id")
	}
	did, err := identity.ParseDID(id.DID)
	if err != nil {
		return nil, contracts.New(contracts.CodeAuthInvalid, "unknown key id")
	}
	return did.PublicKey(), nil
}

// A Session is the stored record of an admin session token (by the hex
// SHA-256 of the token; the token itself is never stored).
type Session struct {
	DID       string    `json:"did"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func sessionHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// sessionActor checks a presented session token against the store: it
// must exist, be unexpired, and its admin must still be an identity; the
// role is the session's, narrowed to what the identity's current role
// still grants.
func (h *Handler) sessionActor(ctx context.Context, tok string) (Actor, error) {
	key := sessionHash(tok)
	raw, ok, err := h.cfg.Store.Get(ctx, KindSession, key)
	if err != nil {
		return Actor{}, contracts.Wrap(contracts.CodeInternal, "admin sessions unavailable", err).WithRetryable(true)
	}
	if !ok {
		return Actor{}, authRequired()
	}
	var s Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return Actor{}, contracts.New(contracts.CodeInternal, "admin sessions hold a bad record")
	}
	if !h.cfg.Now().Before(s.ExpiresAt) {
		_, _ = h.cfg.Store.Delete(ctx, KindSession, key) // best effort: it is refused either way
		return Actor{}, contracts.New(contracts.CodeAuthInvalid, "admin session expired")
	}
	id, err := h.identity(ctx, s.DID)
	if err != nil {
		return Actor{}, err
	}
	if id == nil || !roleCovers(id.Role, s.Role) {
		return Actor{}, authRequired()
	}
	return Actor{DID: s.DID, Role: s.Role, AuthMode: AuthSession, SessionHash: key, ExpiresAt: s.ExpiresAt}, nil
}

// errLastOwner refuses removing or demoting the last owner.
var errLastOwner = contracts.New(contracts.CodeStateInvalidTransition, "the last owner cannot be deleted or demoted")

// owners counts the stored owner identities.
func (h *Handler) owners(ctx context.Context) (int, error) {
	ids, err := h.identities(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if id.Role == RoleOwner {
			n++
		}
	}
	return n, nil
}

// identities reads every stored admin identity, ordered by DID.
func (h *Handler) identities(ctx context.Context) ([]Identity, error) {
	docs, err := h.cfg.Store.All(ctx)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin identities unavailable", err).WithRetryable(true)
	}
	var out []Identity
	for _, d := range docs {
		if d.Kind != KindIdentity {
			continue
		}
		var id Identity
		if err := json.Unmarshal(d.Doc, &id); err != nil {
			return nil, contracts.New(contracts.CodeInternal, "admin identities hold a bad record")
		}
		out = append(out, id)
	}
	return out, nil
}

// PutIdentity stores an admin identity with role (created by createdBy),
// refusing an unknown role, a DID that is not a did:key, and demoting the
// last owner (checked under a lock in this process; two replicas demoting
// the last two owners at the same instant can both succeed, and the
// recovery file is then the way back). It is the API of the identities routes and of set-up code
// and tests that create an owner without the bootstrap credential.
func (h *Handler) PutIdentity(ctx context.Context, did, role, createdBy string) (Identity, error) {
	d, err := identity.ParseDID(did)
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(Roles(), role) {
		return Identity{}, contracts.New(contracts.CodeInvalidInput, "role must be owner, operator, auditor or viewer")
	}
	id := Identity{DID: d.String(), Role: role, CreatedAt: h.cfg.Now().UTC().Truncate(time.Second), CreatedBy: createdBy}
	h.identMu.Lock()
	defer h.identMu.Unlock()
	old, err := h.identity(ctx, id.DID)
	if err != nil {
		return Identity{}, err
	}
	if old != nil {
		id.CreatedAt, id.CreatedBy = old.CreatedAt, old.CreatedBy
		if old.Role == RoleOwner && role != RoleOwner {
			n, err := h.owners(ctx)
			if err != nil {
				return Identity{}, err
			}
			if n <= 1 {
				return Identity{}, errLastOwner
			}
		}
	}
	raw, err := json.Marshal(id)
	if err != nil {
		return Identity{}, err
	}
	if err := h.cfg.Store.Put(ctx, Doc{Kind: KindIdentity, ID: id.DID, Doc: raw}); err != nil {
		return Identity{}, err
	}
	h.changed(KindIdentity)
	return id, nil
}

// errNoIdentity is the answer for an admin identity that does not exist.
var errNoIdentity = contracts.New(contracts.CodeNotFound, "no such admin identity")

// deleteIdentity removes an admin identity unless it is the last owner.
func (h *Handler) deleteIdentity(ctx context.Context, did string) error {
	h.identMu.Lock()
	defer h.identMu.Unlock()
	old, err := h.identity(ctx, did)
	if err != nil {
		return err
	}
	if old == nil {
		return errNoIdentity
	}
	if old.Role == RoleOwner {
		n, err := h.owners(ctx)
		if err != nil {
			return err
		}
		if n <= 1 {
			return errLastOwner
		}
	}
	if _, err := h.cfg.Store.Delete(ctx, KindIdentity, did); err != nil {
		return err
	}
	h.changed(KindIdentity)
	return nil
}

// requireAdmin admits any authenticated admin, whatever its role: the
// routes about the caller itself (whoami, its sessions).
func (h *Handler) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		actor, err := h.authenticate(r)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeAuthInvalid {
				w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
			}
			talos.WriteError(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	}
}
