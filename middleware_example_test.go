package talos_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

func ExampleMiddleware() {
	issuer, _ := identity.GenerateWallet("issuer")
	agent, _ := identity.GenerateWallet("agent")

	// Server: an ordinary mux, its protected routes, the middleware around it.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("POST /v1/fs/{op}", func(w http.ResponseWriter, r *http.Request) {
		d, _ := talos.DecisionFrom(r.Context())
		fmt.Fprintf(w, "%t may %s/%s", d.Principal == agent.DID(), d.Tool, d.Action)
	})
	routes, err := talos.NewRouteTable([]talos.Route{
		{Pattern: "POST /v1/fs/{op}", Tool: "fs", Action: "read"},
	})
	if err != nil {
		log.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{
		Routes:      routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(0)},
		Unmatched:   talos.PassThrough, // /health stays public
	})
	if err != nil {
		log.Fatal(err)
	}
	authz, _ := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	defer authz.Close()
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{Attester: att, Authorizer: authz})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(mw.Wrap(mux))
	defer srv.Close()

	// Client: a capability for the agent, and a request attested with its key.
	tok, _ := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	signer, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	send := func(capHeader string) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/fs/read", bytes.NewReader([]byte(`{"path":"/data"}`)))
		req.Header.Set(talos.HeaderCapability, capHeader)
		op, _ := routes.Opcode(req) // the client signs the route's opcode: "fs.read"
		if err := signer.Sign(req, op); err != nil {
			log.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
	}
	send(tok.Encode())
	fmt.Println()
	send("") // the error body ends in a newline
	resp, _ := http.Get(srv.URL + "/health")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 true may fs/read
	// 403 {"code":"TALOS_INVALID_CAPABILITY","message":"request denied: TALOS_INVALID_CAPABILITY","retryable":false}
	// 200 ok
}
