package capability

import (
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// A Scope is an RBAC scope (rbac/binding.schema.json): a scope type
// (global, team, repo, path, secret, trace, or a type named in
// RBACConfig.Parents) and string attributes. A binding attribute "*"
// matches any value.
type Scope struct {
	Type       string            `json:"scope_type"`
	Attributes map[string]string `json:"attributes"`
}

// ScopeGlobal is the scope type that matches every required scope.
const ScopeGlobal = "global"

// ScopeMatch applies the contract's matching rules
// (rbac/scope_match_vectors.json) to a binding scope and a required scope:
// a global binding matches anything with specificity 0; otherwise the types
// must be equal, every attribute of the required scope must be held by the
// binding with the same value or "*", and the binding may hold no attribute
// the required scope lacks. Specificity is 2 when every attribute matched
// exactly, 1 when a wildcard was used.
func ScopeMatch(required, binding Scope) (match bool, specificity int) {
	return scopeMatch(required, binding, nil)
}

func scopeMatch(required, binding Scope, parents map[string]string) (bool, int) {
	if binding.Type == ScopeGlobal {
		return true, 0
	}
	if binding.Type != required.Type {
		// A binding on an ancestor type (RBACConfig.Parents) covers the
		// required scope when the required scope carries the binding's
		// attributes: an org binding covers a team of that org.
		if !isAncestor(binding.Type, required.Type, parents) {
			return false, 0
		}
		for k, bv := range binding.Attributes {
			rv, ok := required.Attributes[k]
			if !ok || (bv != "*" && bv != rv) {
				return false, 0
			}
		}
		return true, 1
	}
	spec := 2
	for k, rv := range required.Attributes {
		bv, ok := binding.Attributes[k]
		switch {
		case !ok:
			return false, 0
		case bv == "*":
			spec = 1
		case bv != rv:
			return false, 0
		}
	}
	for k := range binding.Attributes {
		if _, ok := required.Attributes[k]; !ok {
			return false, 0
		}
	}
	return true, spec
}

func isAncestor(anc, typ string, parents map[string]string) bool {
	for i := 0; i < 16 && typ != ""; i++ {
		p, ok := parents[typ]
		if !ok {
			return false
		}
		if p == anc {
			return true
		}
		typ = p
	}
	return false
}

// A Role is a named set of permissions. A permission is a string of
// segments separated by '.' or ':' ("keys.write", "audit:read"); in a
// role, a segment "*" matches any one segment, and a trailing "*" matches
// one or more.
//
// ReadOnly limits the role to read-class tool actions: its permissions
// allow a tool action only through [RBAC.CheckTool], and only when
// RBACConfig.Registry classifies the action as read. A read-only role
// allows nothing through [RBAC.Check] (a bare permission string has no
// class) and nothing at all without a registry.
type Role struct {
	ID          string
	Permissions []string
	ReadOnly    bool
}

// A Binding gives a principal a role within a scope.
type Binding struct {
	Principal string
	Role      string
	Scope     Scope
}

// RBACConfig is the policy an RBAC engine enforces.
type RBACConfig struct {
	Roles    []Role
	Bindings []Binding
	// Revoked principals are denied whatever their bindings
	// (rbac/deny_by_default.json "revoked_key").
	Revoked []string
	// Parents maps a scope type to its parent type ("team" → "org"), so
	// that bindings on the parent cover scopes of the child type.
	Parents map[string]string
	// Registry classifies tool actions for read-only roles (see
	// Role.ReadOnly); normally the same registry as the Verifier's
	// Config.Registry. If nil, read-only roles allow nothing.
	Registry *ToolRegistry
}

// An RBAC engine decides whether a principal holds a permission in a
// scope. It denies by default: an empty principal, a principal with no
// bindings, a revoked principal, or no binding whose scope matches and
// whose role grants the permission. It is immutable and safe for
// concurrent use.
type RBAC struct {
	byPrincipal map[string][]rbacBinding
	revoked     map[string]bool
	parents     map[string]string
	registry    *ToolRegistry
}

type rbacBinding struct {
	b        Binding
	perms    [][]string
	readOnly bool
}

type rbacRole struct {
	perms    [][]string
	readOnly bool
}

// A Match reports the binding that allowed a permission and its
// specificity (2 exact, 1 wildcard or parent scope, 0 global). When
// several bindings allow, the most specific wins; ties go to the one
// listed first.
type Match struct {
	Binding     Binding
	Specificity int
}

// NewRBAC compiles cfg. Unknown roles in bindings, malformed permissions,
// duplicate role ids and oversized policies are errors with code
// TALOS_INVALID_INPUT.
func NewRBAC(cfg RBACConfig) (*RBAC, error) {
	if len(cfg.Roles) > MaxRoles || len(cfg.Bindings) > MaxBindings {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC policy too large")
	}
	roles := make(map[string]rbacRole, len(cfg.Roles))
	for _, r := range cfg.Roles {
		if r.ID == "" {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC role without id")
		}
		if _, dup := roles[r.ID]; dup {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC role "+strconv.Quote(r.ID)+" defined twice")
		}
		if len(r.Permissions) > MaxPermissions {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC role "+strconv.Quote(r.ID)+" has too many permissions")
		}
		perms := make([][]string, 0, len(r.Permissions))
		for _, p := range r.Permissions {
			segs := splitPermission(p)
			for _, s := range segs {
				if s == "" {
					return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC permission "+strconv.Quote(p)+" has an empty segment")
				}
			}
			perms = append(perms, segs)
		}
		roles[r.ID] = rbacRole{perms: perms, readOnly: r.ReadOnly}
	}
	e := &RBAC{byPrincipal: make(map[string][]rbacBinding), revoked: make(map[string]bool), parents: cfg.Parents, registry: cfg.Registry}
	for i, b := range cfg.Bindings {
		role, ok := roles[b.Role]
		if !ok {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC binding "+strconv.Itoa(i)+" names unknown role "+strconv.Quote(b.Role))
		}
		if b.Principal == "" || b.Scope.Type == "" {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: RBAC binding "+strconv.Itoa(i)+" lacks a principal or scope type")
		}
		e.byPrincipal[b.Principal] = append(e.byPrincipal[b.Principal], rbacBinding{b: b, perms: role.perms, readOnly: role.readOnly})
	}
	for _, p := range cfg.Revoked {
		e.revoked[p] = true
	}
	return e, nil
}

func splitPermission(p string) []string {
	return strings.Split(strings.ReplaceAll(p, ":", "."), ".")
}

// permits reports whether pattern matches permission perm (segments
// separated by '.' or ':') without allocating.
func permits(pattern []string, perm string) bool {
	i := 0
	for pi, seg := range pattern {
		if i > len(perm) {
			return false
		}
		j := i
		for j < len(perm) && perm[j] != '.' && perm[j] != ':' {
			j++
		}
		if j == i {
			return false
		}
		if seg == "*" && pi == len(pattern)-1 && len(pattern) > 1 {
			return true // trailing wildcard: one or more segments
		}
		if seg != "*" && seg != perm[i:j] {
			return false
		}
		i = j + 1
	}
	return i > len(perm)
}

// Check reports whether principal holds permission in the required scope,
// and the binding that allowed it. Bindings of read-only roles are skipped:
// a bare permission has no read/write class (use [RBAC.CheckTool]).
func (r *RBAC) Check(principal, permission string, required Scope) (bool, Match) {
	return r.check(principal, permission, required, false)
}

// CheckTool reports whether principal may perform action on tool in the
// required scope: whether some binding grants the permission
// "tool.action". Bindings of read-only roles count only when
// RBACConfig.Registry classifies (tool, action) as read.
func (r *RBAC) CheckTool(principal, tool, action string, required Scope) (bool, Match) {
	isRead := false
	if r.registry != nil {
		te, ok := r.registry.Lookup(tool, action)
		isRead = ok && te.Class == ClassRead
	}
	return r.check(principal, tool+"."+action, required, isRead)
}

func (r *RBAC) check(principal, permission string, required Scope, isRead bool) (bool, Match) {
	if principal == "" || permission == "" || r.revoked[principal] {
		return false, Match{}
	}
	best, found := Match{}, false
	for _, rb := range r.byPrincipal[principal] {
		if rb.readOnly && !isRead {
			continue
		}
		ok, spec := scopeMatch(required, rb.b.Scope, r.parents)
		if !ok || (found && spec <= best.Specificity) {
			continue
		}
		for _, p := range rb.perms {
			if permits(p, permission) {
				best, found = Match{Binding: rb.b, Specificity: spec}, true
				break
			}
		}
	}
	return found, best
}
