package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
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

// requireAdmin admits requests that carry the admin bootstrap credential as
// "Authorization: Bearer talos_admin_...", and answers 401 AUTH_INVALID to
// the rest. The kernel's capability-based admin authorization can replace it.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
			talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "admin credential required"))
			return
		}
		next(w, r.WithContext(withPrincipal(r.Context(), "admin-bootstrap")))
	}
}

// isAdmin reports whether r carries the admin bootstrap credential.
func (s *Server) isAdmin(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && checkAdminCredential(strings.TrimSpace(tok), s.adminHash)
}

// handleNotFound answers every unknown route with the contract error body.
func handleNotFound(w http.ResponseWriter, r *http.Request) {
	talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such route"))
}
