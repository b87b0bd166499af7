package auditapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/gateway/auditapi"
	"github.com/talosgo/talos/identity"
)

// Example serves a log: proofs to anyone, entries to the auditor only.
func Example() {
	ctx := context.Background()
	wallet, err := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}
	const origin = "gateway.example.com/audit"
	signer, _ := audit.NewNoteSigner(origin, wallet.Signer())
	verifier, _ := audit.NewVerifier(origin, wallet.PublicKey())
	store := audit.NewMemStore()
	l, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	api, err := auditapi.New(auditapi.Config{
		Log: l, Store: store,
		IsReader: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer auditor-secret" },
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)

	builder, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	ev, _ := builder.Build(httptest.NewRequest("POST", "/v1/authorize", nil), audit.Decision{
		RequestID: "req-1", SurfaceID: "kernel.authorize", TemplatePath: "/v1/authorize", Status: 200,
		Principal: audit.BearerPrincipal("agent-1", "team-a"),
	})
	if _, err := l.Append(ctx, ev); err != nil {
		log.Fatal(err)
	}
	if err := api.Publish(ctx); err != nil { // the tiles' tree head
		log.Fatal(err)
	}
	get := func(path, auth string) int {
		r := httptest.NewRequest("GET", path, nil)
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	fmt.Println(get("/v1/audit/checkpoint", ""))
	fmt.Println(get("/v1/audit/proofs/inclusion?index=0&tree_size=1", ""))
	fmt.Println(get("/tlog/checkpoint", ""))
	fmt.Println(get("/v1/audit/entries/0", ""))
	fmt.Println(get("/v1/audit/entries/0", "auditor-secret"))
	// Output:
	// 200
	// 200
	// 200
	// 401
	// 200
}
