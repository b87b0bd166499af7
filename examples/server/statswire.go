package main

import (
	"net/http"

	"go.opentelemetry.io/otel/metric"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/stats"
)

// kernelScope is the instrumentation scope of the Kernels' metrics.
const kernelScope = "github.com/talosgo/talos"

// kernelMeter returns the meter of one instrumentation scope; the Kernels'
// (kernelScope) also feeds the decision statistics of GET /v1/admin/stats
// (gateway/stats: a tee, the measurements still reach m). The statistics
// are this replica's (scope "replica").
func (s *Server) kernelMeter(scope string, m metric.Meter) metric.Meter {
	if scope != kernelScope {
		return m
	}
	if s.stats == nil {
		s.stats = stats.New(stats.Config{})
	}
	return s.stats.Meter(m)
}

// mountStats serves GET /v1/admin/stats?window= (admin.stats read).
func (s *Server) mountStats(mux *http.ServeMux) {
	if s.stats == nil {
		s.stats = stats.New(stats.Config{})
	}
	s.stats.Register(mux, s.requireAdmin(admin.ToolStats))
}
