package llm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/llm"
)

// An agent whose token allows one model calls it through the proxy; a
// call for another model is refused before the upstream sees it.
func Example() {
	ctx := context.Background()
	// The upstream: any OpenAI-compatible endpoint.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"total_tokens":12}}`)
	}))
	defer upstream.Close()

	issuer, _ := identity.GenerateWallet("issuer")
	logKey, _ := identity.GenerateWallet("log")
	signer, _ := audit.NewNoteSigner("example.com/log", logKey.Signer())
	verifier, _ := audit.NewVerifier("example.com/log", logKey.PublicKey())
	auditLog, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{issuer.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	k, err := talos.NewKernel(talos.KernelConfig{Authorizer: v, Audit: auditLog, Events: events})
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := llm.New(llm.Config{Kernel: k, Upstream: upstream.URL + "/v1", APIKey: "sk-upstream", PricePer1K: 2000})
	if err != nil {
		log.Fatal(err)
	}
	routes, _ := talos.NewRouteTable([]talos.Route{llm.Route()})
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 10)}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(llm.Pattern, att.Wrap(proxy.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	agent, _ := identity.GenerateWallet("agent")
	tok, _ := capability.Issue(issuer.Signer(), agent.DID(), []capability.Grant{{Tool: llm.Tool, Actions: []string{"small-model"}}},
		time.Now().Add(time.Hour), nil)
	as, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	client := &http.Client{Transport: &identity.AttestingTransport{Signer: as, Routes: routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}
	for _, model := range []string{"small-model", "big-model"} {
		resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"`+model+`","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(model, resp.StatusCode)
	}
	// Output:
	// small-model 200
	// big-model 403
}

// Streamed completions are passed through chunk by chunk and charged
// once at the end; GET /v1/models lists the configured models the
// caller's token grants.
func ExampleProxy_ModelsHandler() {
	ctx := context.Background()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer upstream.Close()

	issuer, _ := identity.GenerateWallet("issuer")
	logKey, _ := identity.GenerateWallet("log")
	signer, _ := audit.NewNoteSigner("example.com/log", logKey.Signer())
	verifier, _ := audit.NewVerifier("example.com/log", logKey.PublicKey())
	auditLog, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{issuer.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	k, err := talos.NewKernel(talos.KernelConfig{Authorizer: v, Audit: auditLog, Events: events})
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := llm.New(llm.Config{Kernel: k, Authorizer: v, Upstream: upstream.URL + "/v1", PricePer1K: 2000,
		Models: []string{"small-model", "big-model"}})
	if err != nil {
		log.Fatal(err)
	}
	routes, _ := talos.NewRouteTable([]talos.Route{llm.Route(), llm.ModelsRoute()})
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 10)}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(llm.Pattern, att.Wrap(proxy.Handler()))
	mux.Handle(llm.ModelsPattern, att.Wrap(proxy.ModelsHandler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	agent, _ := identity.GenerateWallet("agent")
	tok, _ := capability.Issue(issuer.Signer(), agent.DID(), []capability.Grant{{Tool: llm.Tool, Actions: []string{"small-model"}}},
		time.Now().Add(time.Hour), nil)
	as, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	client := &http.Client{Transport: &identity.AttestingTransport{Signer: as, Routes: routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}

	resp, err := client.Get(srv.URL + "/v1/models")
	if err != nil {
		log.Fatal(err)
	}
	var list llm.ModelList
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	for _, m := range list.Data {
		fmt.Println("listed", m.ID)
	}
	resp, err = client.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"small-model","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		log.Fatal(err)
	}
	stream, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(stream))
	// Output:
	// listed small-model
	// data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}
	//
	// data: [DONE]
}
