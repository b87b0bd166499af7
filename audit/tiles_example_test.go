package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/identity"
)

// Serving a log held in memory (or PostgreSQL) as C2SP tiles: a tile
// client reads the checkpoint, the hash tiles and the entry bundles.
func ExampleNewTileHandler() {
	ctx := context.Background()
	wallet, err := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}
	const origin = "audit.example.com/log"
	signer, _ := audit.NewNoteSigner(origin, wallet.Signer())
	verifier, _ := audit.NewVerifier(origin, wallet.PublicKey())
	store := audit.NewMemStore()
	l, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	builder, _ := audit.NewEventBuilder(audit.BuilderConfig{Now: func() time.Time { return time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC) }})
	for i := range 3 {
		ev, err := builder.Build(httptest.NewRequest("POST", "/v1/authorize", nil), audit.Decision{
			RequestID: fmt.Sprint("req-", i), SurfaceID: "kernel.authorize", TemplatePath: "/v1/authorize",
			Status: 200, Principal: audit.BearerPrincipal("p-1", "t-1"),
		})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := l.Append(ctx, ev); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil { // publishes the tree of size 3
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /tlog/", http.StripPrefix("/tlog", audit.NewTileHandler(store)))
	for _, p := range []string{"/tlog/checkpoint", "/tlog/tile/0/000.p/3", "/tlog/tile/0/000"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		fmt.Println(strings.TrimSpace(p + " " + fmt.Sprint(w.Code) + " " + w.Header().Get("Cache-Control")))
	}
	// Output:
	// /tlog/checkpoint 200 no-cache
	// /tlog/tile/0/000.p/3 200 max-age=60
	// /tlog/tile/0/000 404
}
