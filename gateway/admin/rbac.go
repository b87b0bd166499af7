package admin

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/talosgo/talos/capability"
)

// Policy is the gateway's mutable RBAC policy: roles and bindings edited
// through the admin API, compiled into an immutable capability.RBAC that
// requests read without locking. Without bindings RBAC is not enforced.
type Policy struct {
	mu       sync.Mutex // guards roles and bindings
	roles    map[string]capability.Role
	bindings map[string]capability.Binding

	compiled atomic.Pointer[capability.RBAC] // nil: no bindings
}

// Current returns the compiled policy, or nil when there is no binding.
func (p *Policy) Current() *capability.RBAC { return p.compiled.Load() }

// set replaces a role or a binding (either may be nil) and recompiles. A
// policy that does not compile is refused and nothing changes; otherwise
// commit (which persists the change) runs before the new policy is used,
// and its failure also leaves everything unchanged.
func (p *Policy) set(role *capability.Role, bindingID string, binding *capability.Binding, commit func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	roles := maps.Clone(p.roles)
	bindings := maps.Clone(p.bindings)
	if roles == nil {
		roles = map[string]capability.Role{}
	}
	if bindings == nil {
		bindings = map[string]capability.Binding{}
	}
	if role != nil {
		roles[role.ID] = *role
	}
	if binding != nil {
		bindings[bindingID] = *binding
	}
	compiled, err := compileRBAC(roles, bindings)
	if err != nil {
		return err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return err
		}
	}
	p.roles, p.bindings = roles, bindings
	p.compiled.Store(compiled)
	return nil
}

// compileRBAC compiles even without bindings, so that an invalid role is
// refused when it is put rather than when a binding first uses it; it
// returns nil (RBAC not enforced) when there is no binding.
func compileRBAC(roles map[string]capability.Role, bindings map[string]capability.Binding) (*capability.RBAC, error) {
	rs := make([]capability.Role, 0, len(roles))
	for _, id := range slices.Sorted(maps.Keys(roles)) {
		rs = append(rs, roles[id])
	}
	bs := make([]capability.Binding, 0, len(bindings))
	for _, id := range slices.Sorted(maps.Keys(bindings)) {
		bs = append(bs, bindings[id])
	}
	compiled, err := capability.NewRBAC(capability.RBACConfig{Roles: rs, Bindings: bs})
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	return compiled, nil
}

// Authorizer returns a capability.Authorizer that asks next (usually the
// capability.Verifier) and then, for an allowed request, the policy's
// current RBAC when it has bindings: a principal the policy does not
// permit is denied with capability.ReasonRBACDenied.
func (p *Policy) Authorizer(next capability.Authorizer) capability.Authorizer {
	return rbacAuthorizer{next: next, p: p}
}

type rbacAuthorizer struct {
	next capability.Authorizer
	p    *Policy
}

func (a rbacAuthorizer) Authorize(ctx context.Context, req capability.Request) (capability.Decision, error) {
	d, err := a.next.Authorize(ctx, req)
	if err != nil || !d.Allowed {
		return d, err
	}
	if rb := a.p.Current(); rb != nil {
		if ok, _ := rb.CheckTool(req.Principal.String(), req.Tool, req.Action, req.Scope); !ok {
			d.Allowed = false
			d.Reason = capability.ReasonRBACDenied
		}
	}
	return d, nil
}

// replace swaps the whole policy for roles and bindings (compiled).
func (p *Policy) replace(roles map[string]capability.Role, bindings map[string]capability.Binding, compiled *capability.RBAC) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roles, p.bindings = roles, bindings
	p.compiled.Store(compiled)
}
