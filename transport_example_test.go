package talos_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/identity"
)

// ExampleRouteTable_client is the agent's side: an http.Client whose
// transport attests every request with the opcode of its route, taken
// from the same route table the server verifies with.
func ExampleRouteTable_client() {
	routes, _ := talos.NewRouteTable([]talos.Route{
		{Pattern: "POST /rooms/{id}/say", Opcode: "rooms.say", AttestOnly: true},
	})
	att, _ := talos.NewAttester(talos.AttesterConfig{
		Routes:      routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(0)},
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rooms/{id}/say", func(w http.ResponseWriter, r *http.Request) {
		p, _ := talos.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "%s said it in %s", p.String()[:9], r.PathValue("id"))
	})
	srv := httptest.NewServer(att.Wrap(mux))
	defer srv.Close()

	agent, _ := identity.GenerateWallet("agent")
	signer, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	client := &http.Client{Transport: &identity.AttestingTransport{Signer: signer, Routes: routes}}
	resp, err := client.Post(srv.URL+"/rooms/lobby/say", "application/json", strings.NewReader(`{"text":"hi"}`))
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 did:key:z said it in lobby
}
