package main

import (
	"net/http"

	"github.com/talosgo/talos/gateway/admin"
)

// mountServices registers every route of the server on mux. The kernel API,
// the MCP gateway, the LLM proxy, the A2A surface and the audit service are
// mounted here too.
//
//	GET  /health/live                          liveness (200 while the process runs)
//	GET  /health/ready                         readiness per dependency (503 names the failure)
//	GET  /metrics                              Prometheus text format of the server's OTel metrics
//	(gateway/admin) /v1/admin/*, /v1/principals*, /v1/rbac/*, /v1/capabilities*, /v1/budgets*
//	PUT  /v1/config/{kind}/{name}              new version of a budget or policy document (admin)
//	GET  /v1/config/{kind}/{name}              latest version (admin)
//	GET  /v1/config/{kind}/{name}/versions     version list, ?limit=&after= (admin)
//	GET  /v1/config/{kind}/{name}/versions/{n} one version (admin)
//	GET  /v1/audit/stream                      live audit events, Server-Sent Events (admin.audit read)
//	GET  /v1/admin/stats?window=               decision statistics of this replica (admin.stats read)
//	GET  /v1/admin/a2a/sessions[/{id}]         A2A sessions: metadata, counts, chain_verified (admin.a2a read)
//	GET  /v1/admin/a2a/groups[/{id}]           A2A groups: metadata, members, chain_verified (admin.a2a read)
//
// The admin routes (the admin API's and /v1/config/*, tool admin.config)
// are behind gateway/admin.Handler.Require with a declared tool and
// action. Every other path answers 404 with the contract error body.
func (s *Server) mountServices(mux *http.ServeMux) {
	mux.HandleFunc("GET /health/live", s.health.Live)
	mux.HandleFunc("GET /health/ready", s.health.Ready)
	mux.Handle("GET /metrics", s.tel.MetricsHandler())
	mux.HandleFunc("GET /openapi.json", serveOpenAPI) // openapi.go: the OpenAPI 3.1 document of every route
	s.configs.Register(mux, s.propagateConfig(s.requireAdmin(admin.ToolConfig)))
	s.core.mount(mux, s.requireAdmin)
	s.mountUpstreamAdmin(mux) // upstreamadmin.go: MCP servers, LLM upstreams, model groups, approvals
	s.mountAudit(mux)
	s.mountAuditStream(mux) // streamwire.go: GET /v1/audit/stream (SSE)
	s.mountStats(mux)       // statswire.go: GET /v1/admin/stats
	s.mountA2AAdmin(mux)    // statsa2a.go: GET /v1/admin/a2a/sessions, /v1/admin/a2a/groups
	s.mountUI(mux)          // uiwire.go: the admin dashboard at /ui/
	mux.HandleFunc("/", handleNotFound)
}
