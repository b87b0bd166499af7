package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// lifecycle holds the background workers and the flush hooks of a Server.
// It is safe for concurrent use.
type lifecycle struct {
	log *slog.Logger

	mu        sync.Mutex // guards the fields below
	hooks     []namedHook
	pending   []namedWorker // registered before start
	workerCtx context.Context
	stopAll   context.CancelFunc
	started   bool
	stopped   bool

	wg       sync.WaitGroup
	draining atomic.Bool
}

type namedHook struct {
	name string
	fn   func(ctx context.Context) error
}

type namedWorker struct {
	name string
	fn   func(ctx context.Context) error
}

// OnShutdown registers a flush hook (the audit log's, the trace exporter's,
// a store's Close). Hooks run once, after the HTTP server has drained and the
// background workers have stopped, in reverse order of registration, sharing
// what is left of the shutdown deadline. Their errors are logged and returned
// by Run.
func (s *Server) OnShutdown(name string, fn func(ctx context.Context) error) {
	s.life.mu.Lock()
	defer s.life.mu.Unlock()
	s.life.hooks = append(s.life.hooks, namedHook{name, fn})
}

// Go registers a background worker. Workers start when the server starts
// serving (at once if it already has) with a context that is cancelled at
// shutdown, before the flush hooks run; a worker must return when its
// context ends. A worker's error is logged; it does not stop the server.
func (s *Server) Go(name string, fn func(ctx context.Context) error) {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if !l.started {
		l.pending = append(l.pending, namedWorker{name, fn})
		return
	}
	l.startLocked(namedWorker{name, fn})
}

func (l *lifecycle) start() {
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

func (l *lifecycle) startLocked(w namedWorker) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := w.fn(l.workerCtx); err != nil && !errors.Is(err, context.Canceled) {
			l.log.Error("background worker failed", "worker", w.name, "err", err)
		}
	}()
}

// stopWorkers cancels the workers and waits for them until ctx ends.
func (l *lifecycle) stopWorkers(ctx context.Context) error {
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
		return errors.New("shutdown: background workers did not stop before the deadline")
	}
}

// runHooks runs the flush hooks in reverse order, each at most once.
func (l *lifecycle) runHooks(ctx context.Context) error {
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

// Serve answers HTTP on ln until ctx ends (SIGTERM in main), then shuts down
// gracefully:
//
//  1. /health/ready answers 503 so load balancers stop sending traffic;
//  2. the listener closes (new connections are refused) and idle
//     keep-alive connections close;
//  3. in-flight requests drain until Config.ShutdownTimeout; whatever is
//     still running then has its connection closed;
//  4. background workers are cancelled and awaited;
//  5. flush hooks run (trace exporter, audit log, stores), newest first.
//
// It returns nil after a clean shutdown, and the first error otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// Every response has a write deadline; gateway calls extend theirs
		// by the upstream deadline (gateway/mcp and gateway/llm Config.WriteTimeout).
		WriteTimeout: s.cfg.WriteTimeout,
		IdleTimeout:  idleTimeout,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:  func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.life.start()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "did", s.wallet.DID().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		// The listener failed: shut the rest down all the same.
	}
	s.life.draining.Store(true)
	s.log.Info("shutting down", "deadline", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()

	var errs []error
	if serveErr == nil {
		if err := hs.Shutdown(sctx); err != nil {
			// The deadline passed with requests still running.
			s.log.Warn("drain deadline passed; closing remaining connections")
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
	if err := s.life.stopWorkers(sctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.life.runHooks(sctx); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("stopped")
	return errors.Join(errs...)
}

// Run listens on Config.Listen and calls Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		s.life.stopWorkers(context.Background())
		s.life.runHooks(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Close releases everything New opened without serving (for callers that
// never call Serve, such as tests and start-up failures).
func (s *Server) Close(ctx context.Context) error {
	s.life.draining.Store(true)
	err := s.life.stopWorkers(ctx)
	return errors.Join(err, s.life.runHooks(ctx))
}
