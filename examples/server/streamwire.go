package main

import (
	"context"
	"net/http"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/auditapi"
)

// mountAuditStream serves the live audit stream, GET /v1/audit/stream
// (Server-Sent Events, admin.audit read), over the shared audit store, so
// events appended on any replica appear. Streams end when shutdown begins
// (Lifecycle.Draining), so they do not hold up the drain.
func (s *Server) mountAuditStream(mux *http.ServeMux) {
	st, err := auditapi.NewStream(auditapi.StreamConfig{
		Log: s.core.log, Store: s.core.logStore, Draining: s.life.Draining,
	})
	if err != nil { // only without a log, which New never leaves
		s.log.Error("audit stream not served", "err", err)
		return
	}
	s.OnShutdown("audit-stream", func(context.Context) error { st.Close(); return nil })
	st.Register(mux, s.requireAdmin(admin.ToolAudit))
}
