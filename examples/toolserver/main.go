// Command toolserver protects two routes of an ordinary net/http mux with
// capability tokens and attested requests, and has an agent call them.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

func main() { run(os.Stdout) }

// must stops the program on a set-up error.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func run(out io.Writer) {
	operator := must(identity.GenerateWallet("operator"))
	agent := must(identity.GenerateWallet("agent"))

	// The service: an ordinary mux; two of its routes are protected, /health is public.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /tools/{id}/run", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "ran %s", r.PathValue("id")) })
	mux.HandleFunc("GET /tools/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "tool %s", r.PathValue("id")) })
	routes := must(talos.NewRouteTable([]talos.Route{
		{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"},
		{Pattern: "GET /tools/{id}", Tool: "tools", Action: "read"},
	}))
	att := must(talos.NewAttester(talos.AttesterConfig{Routes: routes, Unmatched: talos.PassThrough,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(0)}}))
	authz := must(capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{operator.DID()}, Revocations: capability.NewMemRevocationStore(nil)}))
	defer authz.Close()
	mw := must(talos.NewMiddleware(talos.MiddlewareConfig{Attester: att, Authorizer: authz}))
	srv := httptest.NewServer(mw.Wrap(mux)) // on loopback
	defer srv.Close()

	// The agent may read tools, not run them. Its client attests every request
	// on a route of the table (with that route's opcode); /health goes unattested.
	tok := must(capability.Issue(operator.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "tools", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil))
	signer := must(identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()}))
	client := &http.Client{Transport: &identity.AttestingTransport{Signer: signer, Routes: routes, SendUnrouted: true,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/health", ""}, {"GET", "/tools/grep", ""}, {"POST", "/tools/grep/run", `{"args":["-r"]}`},
	} {
		resp := must(client.Do(must(http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body)))))
		body := must(io.ReadAll(resp.Body))
		resp.Body.Close()
		fmt.Fprintf(out, "%s %s: %d %s\n", c.method, c.path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
}
