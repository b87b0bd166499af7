package main

import (
	"context"
	"net/http"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
)

type principalKey struct{}

// withPrincipal records who is making the request (for audit hooks).
func withPrincipal(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalFrom returns the authenticated principal, or "".
func principalFrom(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// requireAdmin returns the wrapper of the admin routes of one admin tool
// (gateway/admin.Handler.RequireTool): an attested request (opcode
// "admin") by an admin identity or an admin session bearer whose role
// grants the tool's read (GET) or write (other methods) action; 401
// AUTH_INVALID or 403 RBAC_DENIED otherwise. The acting admin's DID is
// the request's principal (config change records).
func (s *Server) requireAdmin(tool string) func(http.HandlerFunc) http.HandlerFunc {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return s.core.admin.RequireTool(tool)(func(w http.ResponseWriter, r *http.Request) {
			a, _ := admin.ActorFrom(r.Context())
			next(w, r.WithContext(withPrincipal(r.Context(), a.DID)))
		})
	}
}

// isAdmin reports whether r is an admin request that may read audit
// entries (admin.audit read): the audit API's entry readers.
func (s *Server) isAdmin(r *http.Request) bool {
	if a, ok := admin.ActorFrom(r.Context()); ok {
		return admin.RoleAllows(a.Role, admin.ToolAudit, admin.ActionRead) // admitted by mountAudit
	}
	return s.core != nil && s.core.admin != nil && s.core.admin.Allowed(r, admin.ToolAudit, admin.ActionRead)
}

// handleNotFound answers every unknown route with the contract error body.
func handleNotFound(w http.ResponseWriter, r *http.Request) {
	talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such route"))
}
