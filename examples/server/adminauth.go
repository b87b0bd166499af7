package main

import (
	"net/http"
	"strings"

	"github.com/talosgo/talos/gateway/admin"
)

// mountAudit mounts the audit HTTP service (gateway/auditapi) behind the
// admin grant of its entry readers: GET /v1/audit/events,
// /v1/audit/entries/{index} and /v1/audit/bundle need admin.audit read
// (401 without an admin, 403 RBAC_DENIED for a role without it) unless
// the log is public. The service's routes are served by their own mux
// under /v1/audit/ and /tlog/ (routes mounted on mux itself, such as the
// live stream, take precedence); the matched pattern is copied back for
// the tracing and access log around it. The entry tiles under /tlog/ keep
// the service's own reader check (admin.audit read, 401 otherwise).
func (s *Server) mountAudit(mux *http.ServeMux) {
	am := http.NewServeMux()
	s.core.audit.Register(am)
	am.HandleFunc("/", handleNotFound)
	readers := s.requireAdmin(admin.ToolAudit)
	serve := func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.AuditPublic && (r.Method == http.MethodGet || r.Method == http.MethodHead) && auditReaderPath(r.URL.Path) {
			readers(func(w http.ResponseWriter, r2 *http.Request) {
				am.ServeHTTP(w, r2)
				r.Pattern = r2.Pattern
			})(w, r)
			return
		}
		am.ServeHTTP(w, r)
	}
	mux.HandleFunc("/v1/audit/", serve)
	mux.HandleFunc("/tlog/", serve)
}

// auditReaderPath reports whether path is one of the audit entry readers.
func auditReaderPath(path string) bool {
	return path == "/v1/audit/events" || path == "/v1/audit/bundle" || strings.HasPrefix(path, "/v1/audit/entries/")
}
