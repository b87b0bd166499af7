package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// OnShutdown registers a flush hook (the audit log's, the trace exporter's,
// a store's Close). Hooks run once, after the HTTP server has drained and the
// background workers have stopped, in reverse order of registration, sharing
// what is left of the shutdown deadline. Their errors are logged and returned
// by Run.
func (s *Server) OnShutdown(name string, fn func(ctx context.Context) error) {
	s.life.OnShutdown(name, fn)
}

// Go registers a background worker. Workers start when the server starts
// serving (at once if it already has) with a context that is cancelled at
// shutdown, before the flush hooks run; a worker must return when its
// context ends. A worker's error is logged; it does not stop the server.
func (s *Server) Go(name string, fn func(ctx context.Context) error) { s.life.Go(name, fn) }

// Serve answers HTTP on ln until ctx ends (SIGTERM in main), then shuts down
// gracefully (gateway/serve):
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
	s.log.Info("serving", "addr", ln.Addr().String(), "did", s.wallet.DID().String())
	return s.life.Serve(ctx, hs, ln, s.cfg.ShutdownTimeout)
}

// Run listens on Config.Listen and calls Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		s.life.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Close releases everything New opened without serving (for callers that
// never call Serve, such as tests and start-up failures).
func (s *Server) Close(ctx context.Context) error { return s.life.Close(ctx) }
