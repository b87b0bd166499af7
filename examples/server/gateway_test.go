package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

// fileServer is a real MCP server with a read tool and a write tool.
type fileServer struct {
	server *mcp.Server
	writes atomic.Int64
	reads  atomic.Int64
}

type pathArgs struct {
	Path string `json:"path"`
	Data string `json:"data,omitempty"`
}

func newFileServer() *fileServer {
	fs := &fileServer{server: mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)}
	mcp.AddTool(fs.server, &mcp.Tool{Name: "read_file", Description: "read", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *mcp.CallToolRequest, a pathArgs) (*mcp.CallToolResult, any, error) {
			fs.reads.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "contents of " + a.Path}}}, nil, nil
		})
	mcp.AddTool(fs.server, &mcp.Tool{Name: "write_file", Description: "write"},
		func(_ context.Context, _ *mcp.CallToolRequest, a pathArgs) (*mcp.CallToolResult, any, error) {
			fs.writes.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wrote " + a.Path}}}, nil, nil
		})
	return fs
}

// inMemoryDialer connects the gateway to srv through in-memory transports.
func inMemoryDialer(srv *mcp.Server) upstreamDialer {
	return func(ctx context.Context) (mcp.Transport, error) {
		ct, st := mcp.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}
}

// withGateway starts the gateway of ts on the given upstreams and mounts it.
func withGateway(t *testing.T, ts *testServer, registry *capability.ToolRegistry, upstreams map[string]*mcp.Server) {
	t.Helper()
	dialers := map[string]upstreamDialer{}
	for name, srv := range upstreams {
		dialers[name] = inMemoryDialer(srv)
	}
	if err := ts.core.enableGateway(t.Context(), ts.Server, dialers, registry); err != nil {
		t.Fatal(err)
	}
	ts.core.mountGateway(ts.mux, ts.core.gateway)
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	h    http.Header
	next http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.next.RoundTrip(r)
}

// mcpSession connects a as an MCP client to the gateway, presenting token.
func (a *agent) mcpSession(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: headerTransport{http.Header{HeaderCapability: {token}}, a.client.Transport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: a.base + "/mcp", HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// talosCode extracts data.talos_code from a JSON-RPC error.
func talosCode(t *testing.T, err error) string {
	t.Helper()
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		t.Fatalf("not a JSON-RPC error: %v", err)
	}
	var data struct {
		Code string `json:"talos_code"`
	}
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatalf("error data %s: %v", je.Data, err)
	}
	return data.Code
}

func textOf(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestGatewayAuthorizesEveryCall(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")

	// A read-only token granting both tools: reads pass, writes are refused
	// because the registry classifies write_file as a write.
	ro := issue(t, ts, alice.did, true, grant("files", "read_file", "write_file"))
	cs := alice.mcpSession(t, ro.Token)
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "files.read_file,files.write_file" {
		t.Fatalf("tools %v", names)
	}
	before := auditSize(t, ts)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/a"}})
	if err != nil || textOf(res) != "contents of /a" {
		t.Fatalf("read: %v %v", res, err)
	}
	_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/a", "data": "x"}})
	if code := talosCode(t, err); code != contracts.CodeDenied {
		t.Fatalf("write under a read-only token: %s", code)
	}
	if files.writes.Load() != 0 {
		t.Fatal("the write reached the upstream")
	}
	if got := auditSize(t, ts); got != before+2 {
		t.Fatalf("audit grew by %d, want 2 (one per call)", got-before)
	}
}
