package talos_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// ExampleKernel protects one route of an ordinary mux with the whole
// pipeline: every attested request is authorized, rate-limited (two a
// minute here) and audited exactly once.
func ExampleKernel() {
	ctx := context.Background()
	issuer, _ := identity.GenerateWallet("issuer")
	agent, _ := identity.GenerateWallet("agent")
	logKey, _ := identity.GenerateWallet("log")

	authz, _ := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	defer authz.Close()
	signer, _ := audit.NewNoteSigner("example/log", logKey.Signer())
	verifier, _ := audit.NewVerifier("example/log", logKey.PublicKey())
	auditLog, _ := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{
		MetaAllowlist: map[string][]string{"search.query": {"decision_reason", "tool", "action", "error_code"}},
	})
	limits, _ := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil)},
		map[string]budget.Limit{"search.query": budget.PerMinute(2)})
	kernel, err := talos.NewKernel(talos.KernelConfig{Authorizer: authz, Limits: limits, Audit: auditLog, Events: events})
	if err != nil {
		log.Fatal(err)
	}

	routes, _ := talos.NewRouteTable([]talos.Route{{Pattern: "POST /search", Tool: "search", Action: "query"}})
	att, _ := talos.NewAttester(talos.AttesterConfig{
		Routes:      routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(0)},
	})
	mw, err := kernel.Middleware(talos.KernelMiddlewareConfig{Attester: att})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /search", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "results") })
	srv := httptest.NewServer(mw.Wrap(mux))
	defer srv.Close()

	tok, _ := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "search", Actions: []string{"query"}}}, time.Now().Add(time.Hour), nil)
	reqSigner, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	for range 3 {
		req, _ := http.NewRequest("POST", srv.URL+"/search", strings.NewReader(`{"q":"talos"}`))
		req.Header.Set(talos.HeaderCapability, tok.Encode())
		_ = reqSigner.Sign(req, "search.query")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	size, _ := auditLog.Size(ctx)
	fmt.Println("audit events:", size)
	// Output:
	// 200
	// 200
	// 429
	// audit events: 3
}
