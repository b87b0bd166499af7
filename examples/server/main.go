package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process globals, so tests can drive it. It
// returns the exit code: 0 after a clean shutdown, 1 on a runtime failure,
// 2 on a configuration error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, warnings, err := LoadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: server [flags]\n\nSettings (flag, environment variable, default):\n\n%s", settingsMarkdown())
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	for _, w := range warnings {
		log.Warn(w)
	}
	cfg.stdout = stdout

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Bind first: a taken port must fail before New creates a data
	// directory or prints a one-time admin credential for a server that
	// would then exit.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		log.Error("start-up failed", "err", fmt.Errorf("listen: %w", err))
		return 1
	}
	srv, err := New(ctx, cfg, log)
	if err != nil {
		ln.Close()
		log.Error("start-up failed", "err", err)
		return 1
	}
	otel.SetTracerProvider(srv.TracerProvider())
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("server stopped with an error", "err", err)
		return 1
	}
	return 0
}

func logLevel(s string) slog.Level {
	switch s {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return slog.LevelWarn
	case "ERROR", "CRITICAL":
		return slog.LevelError
	}
	return slog.LevelInfo
}
