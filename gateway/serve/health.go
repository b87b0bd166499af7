package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"
)

// DefaultCheckTimeout bounds each readiness check when Health.Timeout is
// zero.
const DefaultCheckTimeout = 2 * time.Second

// Health answers the liveness and readiness endpoints. Register checks with
// Add before serving; the zero value (with no checks) is ready.
type Health struct {
	// Timeout bounds each check (default DefaultCheckTimeout).
	Timeout time.Duration
	// Draining, when set and true, makes Ready answer 503
	// "shutting_down" without running the checks
	// (usually Lifecycle.Draining).
	Draining func() bool

	checks []check
}

type check struct {
	name     string
	critical bool
	fn       func(ctx context.Context) error
}

// Add registers a readiness check. A failing critical check makes Ready
// answer 503; a failing non-critical one (a read replica, when reads fall
// back to the primary) reports "degraded" with 200. Call it before serving.
func (h *Health) Add(name string, critical bool, fn func(ctx context.Context) error) {
	h.checks = append(h.checks, check{name, critical, fn})
}

// CheckResult is one check's entry in a ReadyBody.
type CheckResult struct {
	Status string `json:"status"`          // ok | failed
	Error  string `json:"error,omitempty"` // timeout | unavailable
}

// ReadyBody is the JSON body of the readiness endpoint.
type ReadyBody struct {
	Status string                 `json:"status"` // ok | degraded | failed | shutting_down
	Checks map[string]CheckResult `json:"checks,omitempty"`
	Failed []string               `json:"failed,omitempty"`
}

// Live answers 200 {"status":"ok"} while the process runs, also while it
// drains (mount it at GET /health/live).
func (h *Health) Live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready runs every check concurrently, each bounded by Timeout, and names
// the ones that failed (mount it at GET /health/ready). Errors are reported
// as "timeout" or "unavailable" only: driver messages can carry host names
// and user names, and this endpoint is usually reachable by load balancers.
func (h *Health) Ready(w http.ResponseWriter, r *http.Request) {
	if h.Draining != nil && h.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, ReadyBody{Status: "shutting_down"})
		return
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	results := make([]CheckResult, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			err := c.fn(ctx)
			switch {
			case err == nil:
				results[i] = CheckResult{Status: "ok"}
			case ctx.Err() != nil:
				results[i] = CheckResult{Status: "failed", Error: "timeout"}
			default:
				results[i] = CheckResult{Status: "failed", Error: "unavailable"}
			}
		}()
	}
	wg.Wait()
	body := ReadyBody{Status: "ok", Checks: make(map[string]CheckResult, len(h.checks))}
	status := http.StatusOK
	for i, c := range h.checks {
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

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL","message":"response encoding failed","retryable":false}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Cached returns a check that runs fn at most once per every: concurrent
// and later callers share the last result (for a probe that costs something,
// such as a disk write, behind an anonymous endpoint). A probe's context is
// the first caller's.
func Cached(every time.Duration, fn func(ctx context.Context) error) func(ctx context.Context) error {
	var (
		mu  sync.Mutex // guards at, err; held during a probe, so callers share it
		at  time.Time
		res error
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < every {
			return res
		}
		res, at = fn(ctx), time.Now()
		return res
	}
}

// WritableDir returns a check that proves dir is writable: it creates,
// writes, syncs and removes a probe file (wrap it in Cached).
func WritableDir(dir string) func(ctx context.Context) error {
	return func(context.Context) error {
		f, err := os.CreateTemp(dir, ".ready-*")
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
}
