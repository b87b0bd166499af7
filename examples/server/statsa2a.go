package main

import (
	"net/http"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/admin"
)

// mountA2AAdmin serves the A2A admin lists (gateway/a2a.AdminList, tool
// admin.a2a): GET /v1/admin/a2a/sessions[/{id}] and
// /v1/admin/a2a/groups[/{id}], metadata and chain verification only, from
// the relay's store (PostgreSQL when configured: every replica's).
func (s *Server) mountA2AAdmin(mux *http.ServeMux) {
	al, err := a2a.NewAdminList(s.core.a2a.store)
	if err != nil { // both relay stores are Listers
		s.log.Error("A2A admin lists not served", "err", err)
		return
	}
	al.Register(mux, s.requireAdmin(admin.ToolA2A))
}
