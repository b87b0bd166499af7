package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/mcp"
)

// TestGateway starts the gateway on 127.0.0.1:0 in front of a real MCP
// server over streamable HTTP, makes an attested tool call that is
// allowed and one that is denied, and checks that the audit log (its
// public signed checkpoint) grew by both.
func TestGateway(t *testing.T) {
	var reads, deletes atomic.Int64
	files := sdk.NewServer(&sdk.Implementation{Name: "files", Version: "1"}, nil)
	sdk.AddTool(files, &sdk.Tool{Name: "read_file", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *sdk.CallToolRequest, a struct {
			Path string `json:"path"`
		}) (*sdk.CallToolResult, any, error) {
			reads.Add(1)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "contents of " + a.Path}}}, nil, nil
		})
	sdk.AddTool(files, &sdk.Tool{Name: "delete_file"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		deletes.Add(1)
		return &sdk.CallToolResult{}, nil, nil
	})
	upstream := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return files }, nil))
	defer upstream.Close()

	issuer, _ := identity.GenerateWallet("issuer")
	ctx, cancel := context.WithCancel(t.Context())
	addrs, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-issuer", issuer.DID().String(), "-upstream", upstream.URL},
			func(a string) { addrs <- a })
	}()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	}

	// An agent with a read-only token for both tools: delete_file is a
	// write (no readOnlyHint), so it is denied before the upstream.
	agent, _ := identity.GenerateWallet("agent")
	tok, err := capability.Issue(issuer.Signer(), agent.DID(), []capability.Grant{{Tool: "files", Actions: []string{"read_file", "delete_file"}}},
		time.Now().Add(time.Hour), &capability.IssueOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	routes, _ := talos.NewRouteTable([]talos.Route{mcp.Route()})
	signer, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	hc := &http.Client{Transport: &identity.AttestingTransport{Signer: signer, Routes: routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	before := checkpointSize(t, base)
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/plan"}})
	if err != nil || len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != "contents of /plan" {
		t.Fatalf("allowed call: %v %v", res, err)
	}
	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "files.delete_file", Arguments: map[string]any{}})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || !strings.Contains(string(je.Data), `"talos_code":"TALOS_DENIED"`) {
		t.Fatalf("write under a read-only token: %v", err)
	}
	if reads.Load() != 1 || deletes.Load() != 0 {
		t.Fatalf("upstream saw %d reads, %d deletes; want 1, 0", reads.Load(), deletes.Load())
	}
	// The read-only token lists only the read tool (one more audited call).
	list, err := cs.ListTools(ctx, nil)
	if err != nil || len(list.Tools) != 1 || list.Tools[0].Name != "files.read_file" {
		t.Fatalf("tools/list under a read-only token: %+v %v", list, err)
	}
	if after := checkpointSize(t, base); after != before+3 {
		t.Fatalf("audit log grew from %d to %d, want one event per call", before, after)
	}
	// An unsigned request never reaches the gateway.
	resp, err := http.Post(base+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unattested request: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// checkpointSize reads the tree size of the gateway's signed checkpoint
// (the C2SP note's second line), public at GET /v1/audit/checkpoint.
func checkpointSize(t *testing.T, base string) uint64 {
	t.Helper()
	resp, err := http.Get(base + "/v1/audit/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(b), "\n")
	if resp.StatusCode != 200 || len(lines) < 3 || lines[0] != "gateway.example/audit" {
		t.Fatalf("checkpoint: %d %q", resp.StatusCode, b)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q", lines[1])
	}
	return n
}
