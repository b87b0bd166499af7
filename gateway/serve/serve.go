// Package serve runs a gateway's HTTP server through its lifecycle:
// background workers started with the server and cancelled at shutdown,
// flush hooks run once after the drain (newest first), a graceful drain with
// a deadline, and the readiness endpoints a load balancer polls
// (GET /health/live, GET /health/ready with named, concurrent checks).
//
// A [Lifecycle] is the shutdown half; a [Health] is the readiness half and
// answers 503 "shutting_down" once its Draining function (usually
// Lifecycle.Draining) says so.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Lifecycle holds the background workers and the flush hooks of a server.
// Its zero value is not usable; call [NewLifecycle]. It is safe for
// concurrent use.
type Lifecycle struct {
	log *slog.Logger

	mu        sync.Mutex // guards the fields below
	hooks     []named
	pending   []named // workers registered before Start
	workerCtx context.Context
	stopAll   context.CancelFunc
	started   bool
	stopped   bool

	wg       sync.WaitGroup
	draining atomic.Bool
}

type named struct {
	name string
	fn   func(ctx context.Context) error
}

// NewLifecycle returns a Lifecycle that logs to log (nil: nowhere).
func NewLifecycle(log *slog.Logger) *Lifecycle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{log: log}
}

// OnShutdown registers a flush hook (an audit log's, a trace exporter's, a
// store's Close). Hooks run once, after the HTTP server has drained and the
// background workers have stopped, in reverse order of registration, sharing
// what is left of the shutdown deadline. Their errors are logged and
// returned by Serve and Close.
func (l *Lifecycle) OnShutdown(name string, fn func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hooks = append(l.hooks, named{name, fn})
}

// Go registers a background worker. Workers start with Start (at once if it
// has run) with a context that is cancelled at shutdown, before the flush
// hooks run; a worker must return when its context ends. A worker's error
// is logged; it does not stop the server. After shutdown Go does nothing.
func (l *Lifecycle) Go(name string, fn func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if !l.started {
		l.pending = append(l.pending, named{name, fn})
		return
	}
	l.startLocked(named{name, fn})
}

// Start starts the registered workers (Serve calls it). Later calls do
// nothing.
func (l *Lifecycle) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return
	}
	l.started = true
	l.workerCtx, l.stopAll = context.WithCancel(context.Background())
	for _, w := range l.pending {
		l.startLocked(w)
	}
	l.pending = nil
}

func (l *Lifecycle) startLocked(w named) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := w.fn(l.workerCtx); err != nil && !errors.Is(err, context.Canceled) {
			l.log.Error("background worker failed", "worker", w.name, "err", err)
		}
	}()
}

// Draining reports whether shutdown has begun.
func (l *Lifecycle) Draining() bool { return l.draining.Load() }

// ErrWorkersDeadline is returned (joined) when background workers did not
// return before the shutdown deadline.
var ErrWorkersDeadline = errors.New("shutdown: background workers did not stop before the deadline")

// stopWorkers cancels the workers and waits for them until ctx ends.
func (l *Lifecycle) stopWorkers(ctx context.Context) error {
	l.mu.Lock()
	l.stopped = true
	cancel := l.stopAll
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ErrWorkersDeadline
	}
}

// runHooks runs the flush hooks in reverse order, each at most once.
func (l *Lifecycle) runHooks(ctx context.Context) error {
	l.mu.Lock()
	hooks := l.hooks
	l.hooks = nil
	l.mu.Unlock()
	var errs []error
	for i := len(hooks) - 1; i >= 0; i-- {
		h := hooks[i]
		if err := h.fn(ctx); err != nil {
			l.log.Error("shutdown hook failed", "hook", h.name, "err", err)
			errs = append(errs, fmt.Errorf("shutdown hook %s: %w", h.name, err))
		}
	}
	return errors.Join(errs...)
}

// Serve starts the workers and runs hs on ln until ctx ends, then shuts
// down gracefully:
//
//  1. Draining reports true (so /health/ready answers 503 and load
//     balancers stop sending traffic);
//  2. the listener closes (new connections are refused) and idle
//     keep-alive connections close;
//  3. in-flight requests drain until timeout; whatever is still running
//     then has its connection closed;
//  4. background workers are cancelled and awaited;
//  5. flush hooks run, newest first.
//
// A listener failure shuts the rest down all the same. Serve returns nil
// after a clean shutdown, and the errors joined otherwise.
func (l *Lifecycle) Serve(ctx context.Context, hs *http.Server, ln net.Listener, timeout time.Duration) error {
	l.Start()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	l.draining.Store(true)
	l.log.Info("shutting down", "deadline", timeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()

	var errs []error
	if serveErr == nil {
		if err := hs.Shutdown(sctx); err != nil {
			// The deadline passed with requests still running.
			l.log.Warn("drain deadline passed; closing remaining connections")
			hs.Close()
			errs = append(errs, fmt.Errorf("shutdown: drain: %w", err))
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	} else if !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
		hs.Close()
	}
	if err := l.stopWorkers(sctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.runHooks(sctx); err != nil {
		errs = append(errs, err)
	}
	l.log.Info("stopped")
	return errors.Join(errs...)
}

// Close shuts down without serving (for start-up failures and callers that
// never call Serve): Draining becomes true, workers are cancelled and
// awaited until ctx ends, and the flush hooks run.
func (l *Lifecycle) Close(ctx context.Context) error {
	l.draining.Store(true)
	err := l.stopWorkers(ctx)
	return errors.Join(err, l.runHooks(ctx))
}
