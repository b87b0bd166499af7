package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// An mcpGateway is an MCP server whose tools are the tools of its upstream
// MCP servers, named "<upstream>.<tool>". Every call is attested, authorized
// (capability tool = upstream name, action = tool name, read/write class from
// the tool registry), rate-limited, charged to the caller's budgets and
// audited by the Kernel before it is forwarded.
type mcpGateway struct {
	core   *core
	server *mcp.Server
	// kernel decides gateway calls with a verifier that knows the tool
	// registry: unknown tools are denied, read-only tokens get only reads.
	kernel   *talos.Kernel
	registry *capability.ToolRegistry
	// cost is what one call reserves and charges, in micro-USD, against
	// the caller's key and team budgets.
	cost int64

	dialers   map[string]upstreamDialer
	mu        sync.Mutex                    // guards upstreams
	upstreams map[string]*mcp.ClientSession // nil entry: reconnect on next call
}

// An upstreamDialer connects to one upstream MCP server.
type upstreamDialer func(ctx context.Context) (mcp.Transport, error)

// newMCPGateway connects to every upstream, lists its tools and registers
// them on the gateway. An upstream that cannot be reached fails start-up:
// a gateway silently missing tools is worse than one that does not start.
//
// registry classifies each tool as read or write (capability tool = the
// upstream name, action = the tool name); tools it does not list are
// exposed but every call to them is denied (UNKNOWN_TOOL). If registry is
// nil, it is derived from the upstreams' own annotations: a tool is a read
// only when it declares readOnlyHint, and a write otherwise.
func newMCPGateway(ctx context.Context, c *core, upstreams map[string]upstreamDialer, registry *capability.ToolRegistry) (g *mcpGateway, err error) {
	g = &mcpGateway{
		core:      c,
		server:    mcp.NewServer(&mcp.Implementation{Name: "talos-gateway", Version: talos.Version}, nil),
		upstreams: map[string]*mcp.ClientSession{},
		dialers:   upstreams,
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	var derived []capability.ToolEntry
	names := make([]string, 0, len(upstreams))
	for n := range upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.ContainsAny(name, "./ ") || name == "" {
			return nil, fmt.Errorf("gateway: invalid upstream name %q", name)
		}
		cs, err := g.connect(ctx, name)
		if err != nil {
			return nil, err
		}
		g.upstreams[name] = cs
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				return nil, fmt.Errorf("gateway: upstream %s: listing tools: %w", name, err)
			}
			g.addTool(name, tool)
			e := capability.ToolEntry{Tool: name, Action: tool.Name, Class: capability.ClassWrite, RequiresIdempotencyKey: true}
			if tool.Annotations != nil && tool.Annotations.ReadOnlyHint {
				e.Class, e.RequiresIdempotencyKey = capability.ClassRead, false
			}
			derived = append(derived, e)
		}
	}
	if registry == nil {
		if registry, err = capability.NewToolRegistry(derived); err != nil {
			return nil, fmt.Errorf("gateway: tool registry: %w", err)
		}
	}
	g.registry = registry
	v, err := c.newVerifier(registry)
	if err != nil {
		return nil, err
	}
	if g.kernel, err = c.newKernel(v); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *mcpGateway) addTool(upstream string, t *mcp.Tool) {
	exposed := *t
	exposed.Name = upstream + "." + t.Name
	g.server.AddTool(&exposed, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return g.call(ctx, upstream, t.Name, req)
	})
}

// connect opens a session with upstream name.
func (g *mcpGateway) connect(ctx context.Context, name string) (*mcp.ClientSession, error) {
	t, err := g.dialers[name](ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %s: %w", name, err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "talos-gateway", Version: talos.Version}, nil)
	cs, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %s: %w", name, err)
	}
	return cs, nil
}

// session returns the session with upstream name, reconnecting when the
// last one failed.
func (g *mcpGateway) session(ctx context.Context, name string) (*mcp.ClientSession, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cs := g.upstreams[name]; cs != nil {
		return cs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamConnectTimeout)
	defer cancel()
	cs, err := g.connect(ctx, name)
	if err != nil {
		return nil, err
	}
	g.upstreams[name] = cs
	return cs, nil
}

// drop forgets a failed session so that the next call reconnects. The
// failed call itself is not retried: a tool call may have side effects.
func (g *mcpGateway) drop(name string, cs *mcp.ClientSession) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.upstreams[name] == cs {
		g.upstreams[name] = nil
		cs.Close()
	}
}

// Close ends the upstream sessions.
func (g *mcpGateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for name, cs := range g.upstreams {
		if cs != nil {
			errs = append(errs, cs.Close())
		}
		g.upstreams[name] = nil
	}
	return errors.Join(errs...)
}

// denyError is the JSON-RPC error of a refused call: code -32000 with the
// contract code and HTTP status in data, and nothing more.
func denyError(code string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]any{"talos_code": code, "http_status": contracts.HTTPStatus(code)})
	return &jsonrpc.Error{Code: -32000, Message: "denied: " + code, Data: data}
}

func (g *mcpGateway) call(ctx context.Context, upstream, tool string, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	// The principal is a typed value in the context: the go-sdk connects
	// each stateless request's session with the HTTP request's context, so
	// its values (the Attester's verified attestation) reach tool handlers.
	p, ok := g.core.principalOf(ctx)
	if !ok || req.Extra == nil || req.Extra.Header == nil {
		return nil, denyError(contracts.CodeAuthInvalid)
	}
	did, err := identity.ParseDID(p.DID)
	if err != nil {
		return nil, denyError(contracts.CodeAuthInvalid)
	}
	args := req.Params.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	canon, err := contracts.Canonicalize(args)
	if err != nil {
		return nil, denyError(contracts.CodeInvalidInput)
	}
	sum := sha256.Sum256(canon)
	call := talos.Call{
		Request: capability.Request{
			Capability: req.Extra.Header.Get(talos.HeaderCapability),
			Principal:  did, Tool: upstream, Action: tool, ArgsDigest: hex.EncodeToString(sum[:]),
		},
		SurfaceID: opMCPGateway, TemplatePath: "/mcp", Team: p.TeamID,
		Budget: g.core.budgets.request(p, g.cost, "mcp"),
	}
	var result *mcp.CallToolResult
	out, err := g.kernel.Do(ctx, call, func(ctx context.Context, d capability.Decision) (int64, int, error) {
		cs, err := g.session(ctx, upstream)
		if err != nil {
			return 0, 0, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", err)
		}
		cctx, cancel := context.WithTimeout(ctx, upstreamCallTimeout)
		defer cancel()
		res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(canon)})
		if err != nil {
			var je *jsonrpc.Error
			if !errors.As(err, &je) {
				g.drop(upstream, cs) // a transport failure: reconnect next time
			}
			if errors.Is(cctx.Err(), context.DeadlineExceeded) {
				return 0, 0, contracts.Wrap(contracts.CodeUpstreamTimeout, "upstream timed out", err)
			}
			return 0, 0, contracts.Wrap(contracts.CodeMCPProtocol, "upstream call failed", err)
		}
		result = res
		return g.cost, http.StatusOK, nil
	})
	if !out.Allowed || err != nil {
		code := out.Code
		if code == "" {
			code = contracts.CodeInternal
		}
		return nil, denyError(code)
	}
	return result, nil
}

// handler returns the attested streamable-HTTP MCP endpoint. The MCP
// session is stateless: every JSON-RPC POST is attested on its own.
func (g *mcpGateway) handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return g.server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	})
}

// upstreamCallTimeout bounds one forwarded tool call, and
// upstreamConnectTimeout a reconnection to an upstream.
const (
	upstreamCallTimeout    = 30 * time.Second
	upstreamConnectTimeout = 10 * time.Second
)

// maxMCPBody bounds one JSON-RPC message posted to the gateway.
const maxMCPBody = 1 << 20

// mountGateway mounts the MCP gateway at POST /mcp. Before the MCP handler
// sees a request it must be attested and be one JSON-RPC request or
// notification; every refusal, the MCP handler's own included, is the
// contract error body. Answers are always JSON (never an SSE stream).
func (c *core) mountGateway(mux *http.ServeMux, g *mcpGateway) {
	inner := g.handler()
	mux.Handle("POST /mcp", c.attester.Wrap(c.registered(func(w http.ResponseWriter, r *http.Request, p *principal) {
		extendWriteDeadline(w, upstreamConnectTimeout+upstreamCallTimeout+c.writeTimeout)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMCPBody))
		if err != nil {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "request body too large or unreadable"))
			return
		}
		if err := checkJSONRPC(body); err != nil {
			talos.WriteError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.Header.Set("Accept", "application/json, text/event-stream")
		inner.ServeHTTP(&mcpErrorWriter{ResponseWriter: w, r: r}, r)
	})))
}

// checkJSONRPC accepts one JSON-RPC 2.0 request or notification object.
// Bodies with two keys equal under case folding, at any depth, and
// mis-cased member names are refused (contracts.UnmarshalFields): the MCP
// SDK decodes the body with encoding/json, which matches names without
// regard to case, so "Params" or a second "NAME" inside the arguments would
// otherwise be read one way here and another way upstream.
func checkJSONRPC(body []byte) error {
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  json.RawMessage `json:"method"`
		ID      json.RawMessage `json:"id"`
		Params  *struct {
			Name      json.RawMessage `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if err := contracts.UnmarshalFields(body, &msg); err != nil {
		return err
	}
	if msg.JSONRPC != "2.0" || len(msg.Method) < 3 || msg.Method[0] != '"' {
		return contracts.Errorf(contracts.CodeInvalidInput, "body must be one JSON-RPC 2.0 request or notification")
	}
	return nil
}

// mcpErrorWriter replaces the MCP handler's plain-text HTTP errors with the
// contract error body.
type mcpErrorWriter struct {
	http.ResponseWriter
	r      *http.Request
	failed bool
}

func (e *mcpErrorWriter) WriteHeader(status int) {
	if status >= 400 && !strings.HasPrefix(e.Header().Get("Content-Type"), "application/json") {
		e.failed = true
		code := contracts.CodeInvalidInput
		switch {
		case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			code = contracts.CodeNotFound
		case status >= 500:
			code = contracts.CodeInternal
		}
		e.Header().Del("Content-Length")
		talos.WriteError(e.ResponseWriter, e.r, contracts.Errorf(code, "MCP request refused: "+strings.ToLower(http.StatusText(status))))
		return
	}
	e.ResponseWriter.WriteHeader(status)
}

func (e *mcpErrorWriter) Write(b []byte) (int, error) {
	if e.failed {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (e *mcpErrorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
