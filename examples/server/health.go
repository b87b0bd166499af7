package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"
)

// A readyCheck probes one dependency. A failing critical check makes
// /health/ready answer 503; a failing non-critical one (the PostgreSQL
// replica: reads fall back to the primary) reports "degraded" with 200.
type readyCheck struct {
	name     string
	critical bool
	fn       func(ctx context.Context) error
}

// setupReadyChecks registers a check per configured dependency.
func (s *Server) setupReadyChecks() {
	s.checks = append(s.checks, readyCheck{"data_dir", true, s.checkDataDir})
	if s.db != nil {
		s.checks = append(s.checks, readyCheck{"postgres_primary", true, s.db.PingPrimary})
		if s.db.Replica() != nil {
			s.checks = append(s.checks, readyCheck{"postgres_replica", false, s.db.PingReplica})
		}
	}
	if s.redis != nil {
		s.checks = append(s.checks, readyCheck{"redis", true, func(ctx context.Context) error {
			return s.redis.Ping(ctx).Err()
		}})
	}
}

// AddReadyCheck registers another readiness check (the lead's audit log,
// upstream MCP servers). Call it before serving.
func (s *Server) AddReadyCheck(name string, critical bool, fn func(ctx context.Context) error) {
	s.checks = append(s.checks, readyCheck{name, critical, fn})
}

// dataDirProbeEvery is how long a data directory probe's result is reused:
// /health/ready is anonymous, and a probe writes and fsyncs a file.
const dataDirProbeEvery = 10 * time.Second

// dataDirProbe caches the data directory probe.
type dataDirProbe struct {
	mu    sync.Mutex // guards at, err; held during a probe, so callers share it
	every time.Duration
	at    time.Time
	err   error
}

// checkDataDir proves the data directory is writable, at most once per
// dataDirProbeEvery: concurrent and later callers share the last result.
func (s *Server) checkDataDir(ctx context.Context) error {
	p := &s.dirProbe
	p.mu.Lock()
	defer p.mu.Unlock()
	every := p.every
	if every == 0 {
		every = dataDirProbeEvery
	}
	if !p.at.IsZero() && time.Since(p.at) < every {
		return p.err
	}
	p.err, p.at = s.probeDataDir(ctx), time.Now()
	return p.err
}

// probeDataDir creates, writes, syncs and removes a probe file.
func (s *Server) probeDataDir(context.Context) error {
	f, err := os.CreateTemp(s.cfg.DataDir, ".ready-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, serr, cerr, rerr)
}

type checkResult struct {
	Status string `json:"status"`          // ok | failed
	Error  string `json:"error,omitempty"` // timeout | unavailable
}

type readyBody struct {
	Status string                 `json:"status"` // ok | degraded | failed | shutting_down
	Checks map[string]checkResult `json:"checks,omitempty"`
	Failed []string               `json:"failed,omitempty"`
}

// handleLive answers 200 while the process runs, also while it drains.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady runs every check concurrently, each bounded by
// readyCheckTimeout, and names the ones that failed. Errors are reported as
// "timeout" or "unavailable" only: driver messages can carry host names and
// user names, and this endpoint is usually reachable by load balancers.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.life.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyBody{Status: "shutting_down"})
		return
	}
	results := make([]checkResult, len(s.checks))
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
			defer cancel()
			err := c.fn(ctx)
			switch {
			case err == nil:
				results[i] = checkResult{Status: "ok"}
			case ctx.Err() != nil:
				results[i] = checkResult{Status: "failed", Error: "timeout"}
			default:
				results[i] = checkResult{Status: "failed", Error: "unavailable"}
			}
		}()
	}
	wg.Wait()
	body := readyBody{Status: "ok", Checks: make(map[string]checkResult, len(s.checks))}
	status := http.StatusOK
	for i, c := range s.checks {
		body.Checks[c.name] = results[i]
		if results[i].Status == "ok" {
			continue
		}
		body.Failed = append(body.Failed, c.name)
		if c.critical {
			body.Status, status = "failed", http.StatusServiceUnavailable
		} else if body.Status == "ok" {
			body.Status = "degraded"
		}
	}
	writeJSON(w, status, body)
}
