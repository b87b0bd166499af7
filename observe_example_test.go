package talos_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/talosgo/talos"
)

// AccessLog writes one line per request; behind an Attester or a Kernel
// middleware it also names the route, the principal and the decision.
func ExampleAccessLog() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "latency" {
				return slog.Attr{} // vary from run to run
			}
			return a
		},
	}))
	h := talos.AccessLog(logger, mux)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/health?token=never-logged", nil))
	// Output:
	// level=INFO msg=request method=GET path=/health status=200 bytes=2 route="GET /health"
}
