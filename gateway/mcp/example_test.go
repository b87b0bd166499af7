package mcp_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/mcp"
)

// An MCP server in the same process is the gateway's upstream; an agent
// calls its tool through the gateway with an attested MCP client and a
// capability token.
func Example() {
	ctx := context.Background()

	// The upstream: a go-sdk server with one read-only tool.
	upstream := sdk.NewServer(&sdk.Implementation{Name: "clock", Version: "1"}, nil)
	sdk.AddTool(upstream, &sdk.Tool{Name: "now", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
		func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "12:00"}}}, nil, nil
		})

	// The trust machinery: an issuer key, an audit log and a Kernel whose
	// verifier classifies tools with the gateway's registry.
	issuer, _ := identity.GenerateWallet("issuer")
	logKey, _ := identity.GenerateWallet("log")
	signer, _ := audit.NewNoteSigner("example.com/log", logKey.Signer())
	verifier, _ := audit.NewVerifier("example.com/log", logKey.PublicKey())
	auditLog, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	gw, err := mcp.New(ctx, mcp.Config{
		Upstreams: map[string]mcp.Dialer{"clock": mcp.InMemoryUpstream(upstream)},
		NewKernelConfig: func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
			v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{issuer.DID()}, Registry: reg,
				Revocations: capability.NewMemRevocationStore(nil)})
			if err != nil {
				return talos.KernelConfig{}, err
			}
			return talos.KernelConfig{Authorizer: v, Audit: auditLog, Events: events}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()

	// Serve it behind an Attester: only signed requests reach it.
	routes, _ := talos.NewRouteTable([]talos.Route{mcp.Route()})
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 10)}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(mcp.Pattern, att.Wrap(gw.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The agent: its own key, a token for clock.now, an attested client.
	agent, _ := identity.GenerateWallet("agent")
	tok, _ := capability.Issue(issuer.Signer(), agent.DID(), []capability.Grant{{Tool: "clock", Actions: []string{"now"}}},
		time.Now().Add(time.Hour), nil)
	as, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	hc := &http.Client{Transport: &identity.AttestingTransport{Signer: as, Routes: routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}
	client := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil) // only the tools the token allows
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tools:", tools.Tools[0].Name)
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "clock.now", Arguments: map[string]any{}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*sdk.TextContent).Text)
	size, _ := auditLog.Size(ctx)
	fmt.Println("audited requests:", size)
	// Output:
	// tools: clock.now
	// 12:00
	// audited requests: 2
}
