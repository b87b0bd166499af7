package main

import (
	"context"
	"sync"
	"time"

	"github.com/talosgo/talos/gateway/serve"
)

// setupReadyChecks registers a readiness check per configured dependency
// (gateway/serve answers /health/ready). A failing non-critical check (the
// PostgreSQL replica: reads fall back to the primary) reports "degraded".
// The body also reports where each piece of shared state lives ("state",
// "per_process"; withStateScope in statescope.go).
func (s *Server) setupReadyChecks() {
	s.health.Timeout = readyCheckTimeout
	s.health.Draining = s.life.Draining
	s.health.Add("data_dir", true, s.checkDataDir)
	if s.db != nil {
		s.health.Add("postgres_primary", true, s.db.PingPrimary)
		if s.db.Replica() != nil {
			s.health.Add("postgres_replica", false, s.db.PingReplica)
		}
	}
	if s.redis != nil {
		s.health.Add("redis", true, func(ctx context.Context) error { return s.redis.Ping(ctx).Err() })
	}
}

// AddReadyCheck registers another readiness check (the lead's audit log,
// upstream MCP servers). Call it before serving.
func (s *Server) AddReadyCheck(name string, critical bool, fn func(ctx context.Context) error) {
	s.health.Add(name, critical, fn)
}

// dataDirProbeEvery is how long a data directory probe's result is reused:
// /health/ready is anonymous, and a probe writes and fsyncs a file.
const dataDirProbeEvery = 10 * time.Second

// dataDirProbe caches the data directory probe; every (tests shorten it)
// is read at the first probe.
type dataDirProbe struct {
	every time.Duration
	once  sync.Once
	check func(ctx context.Context) error
}

// checkDataDir proves the data directory is writable, at most once per
// dataDirProbeEvery: concurrent and later callers share the last result.
func (s *Server) checkDataDir(ctx context.Context) error {
	p := &s.dirProbe
	p.once.Do(func() {
		every := p.every
		if every == 0 {
			every = dataDirProbeEvery
		}
		p.check = serve.Cached(every, serve.WritableDir(s.cfg.DataDir))
	})
	return p.check(ctx)
}
