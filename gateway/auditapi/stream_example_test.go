package auditapi_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/gateway/auditapi"
	"github.com/talosgo/talos/identity"
)

// ExampleStream serves the live audit stream to auditors and reads one
// event from it, as a dashboard or `talos admin watch` does.
func ExampleStream() {
	ctx := context.Background()
	wallet, _ := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	const origin = "gateway.example.com/audit"
	signer, _ := audit.NewNoteSigner(origin, wallet.Signer())
	verifier, _ := audit.NewVerifier(origin, wallet.PublicKey())
	store := audit.NewMemStore()
	l, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	stream, err := auditapi.NewStream(auditapi.StreamConfig{Log: l, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	mux := http.NewServeMux()
	stream.Register(mux, func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer auditor-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/v1/audit/stream?outcome=denied", nil)
	req.Header.Set("Authorization", "Bearer auditor-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()

	b, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	for _, status := range []int{200, 403} {
		ev, err := b.BuildEvent("POST", netip.Addr{}, audit.Decision{RequestID: "req-1", SurfaceID: "kernel.authorize",
			TemplatePath: "/v1/authorize", Status: status, Principal: audit.AnonymousPrincipal()})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := l.Append(ctx, ev); err != nil {
			log.Fatal(err)
		}
	}
	stream.Wake()
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			fmt.Println(strings.Contains(line, `"outcome":"denied"`))
			return
		}
		if strings.HasPrefix(line, "event: ") {
			fmt.Print(line)
		}
	}
	// Output:
	// event: audit
	// true
}
