package serve_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/talosgo/talos/gateway/serve"
)

// A gateway's main: readiness checks, a flush hook, serving until the
// context ends (signal.NotifyContext with SIGTERM in a real main).
func Example() {
	life := serve.NewLifecycle(nil)
	health := &serve.Health{Draining: life.Draining}
	health.Add("data_dir", true, serve.Cached(serve.DefaultCheckTimeout, serve.WritableDir(os.TempDir())))
	life.OnShutdown("audit-log", func(context.Context) error { fmt.Println("flushed"); return nil })

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", health.Live)
	mux.HandleFunc("GET /health/ready", health.Ready)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- life.Serve(ctx, &http.Server{Handler: mux}, ln, serve.DefaultCheckTimeout) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/health/ready")
	if err != nil {
		panic(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", string(b))
	stop()
	fmt.Println(<-done)
	// Output:
	// 200 {"status":"ok","checks":{"data_dir":{"status":"ok"}}}
	// flushed
	// <nil>
}
