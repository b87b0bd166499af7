package mcp

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
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/internal/httpx"
)

// SurfaceID is the audit surface and attestation opcode of gateway calls;
// it is also the Kernel's rate-limit surface for them.
const SurfaceID = "mcp.gateway"

// Pattern is the route the gateway is served at ([Gateway.Handler]), and
// TemplatePath the route template recorded in audit events.
const (
	Pattern      = "POST /mcp"
	TemplatePath = "/mcp"
)

// Route is the attested route of the gateway, for the [talos.RouteTable]
// of the [talos.Attester] it is mounted behind. It is AttestOnly: the tool
// and action come from the JSON-RPC body, and the gateway asks the Kernel
// itself, once per tool call.
func Route() talos.Route {
	return talos.Route{Pattern: Pattern, Opcode: SurfaceID, AttestOnly: true}
}

// Defaults of [Config].
const (
	DefaultCallTimeout    = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	// MaxBody bounds one JSON-RPC message posted to the gateway.
	MaxBody = 1 << 20
)

// A Dialer connects to one upstream MCP server; the gateway calls it at
// start-up and again to reconnect after a transport failure.
type Dialer func(ctx context.Context) (sdk.Transport, error)

// HTTPUpstream dials an upstream MCP server over streamable HTTP at
// endpoint, without retries or the standalone SSE stream (each forwarded
// call is one POST).
func HTTPUpstream(endpoint string, client *http.Client) Dialer {
	return func(context.Context) (sdk.Transport, error) {
		return &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: client, MaxRetries: -1, DisableStandaloneSSE: true}, nil
	}
}

// InMemoryUpstream dials srv, an MCP server in the same process, through
// the go-sdk's in-memory transports: one new server session per dial.
func InMemoryUpstream(srv *sdk.Server) Dialer {
	return func(ctx context.Context) (sdk.Transport, error) {
		ct, st := sdk.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}
}

// Config configures a [Gateway]. Kernel or NewKernel is required, and at
// least one upstream.
type Config struct {
	// Kernel decides, rate-limits, charges and audits every call. Its
	// Authorizer must classify tools with Registry (a capability.Verifier
	// built with Config.Registry): set Kernel only with a non-nil Registry.
	Kernel *talos.Kernel
	// NewKernel, used when Kernel is nil, returns the Kernel for the
	// registry in effect (Registry, or the one derived from the upstreams'
	// annotations). It is called once, by New.
	NewKernel func(*capability.ToolRegistry) (*talos.Kernel, error)
	// Upstreams maps each upstream's name to its dialer. Its tools are
	// served as "<name>.<tool>"; names are non-empty and hold no '.', '/'
	// or space.
	Upstreams map[string]Dialer
	// Registry classifies each tool as a read or a write (capability tool
	// = the upstream name, action = the tool name); tools it does not list
	// are served but every call to them is denied (UNKNOWN_TOOL). If nil,
	// it is derived from the upstreams' annotations: a tool is a read only
	// when it declares readOnlyHint.
	Registry *capability.ToolRegistry
	// Cost is what one call reserves and charges, in micro-USD, when
	// Budget returns a reservation.
	Cost int64
	// Team, if set, returns the team of a call's principal, recorded in
	// its audit event and passed to Budget. ok false refuses the call
	// (AUTH_INVALID): e.g. a registration deleted since the attestation
	// was verified.
	Team func(ctx context.Context, principal identity.DID) (team string, ok bool)
	// Budget, if set, returns what a call reserves: amount micro-USD for
	// principal of team, or nil for no budget.
	Budget func(ctx context.Context, principal identity.DID, team string, amount int64) *budget.ReserveRequest
	// CallTimeout bounds one forwarded tool call (default
	// DefaultCallTimeout), ConnectTimeout a reconnection to an upstream
	// (default DefaultConnectTimeout).
	CallTimeout, ConnectTimeout time.Duration
	// WriteTimeout is the server's write deadline per response
	// (http.Server.WriteTimeout): the handler extends a request's deadline
	// to ConnectTimeout+CallTimeout+WriteTimeout from when it starts. Zero
	// (a server without a write deadline) leaves the deadline alone.
	WriteTimeout time.Duration
	// Implementation names the gateway to its clients and upstreams. If
	// nil, "talos-gateway" at talos.Version.
	Implementation *sdk.Implementation
}

// A Gateway is an MCP server whose tools are the tools of its upstream
// MCP servers, named "<upstream>.<tool>". Every call is attested,
// authorized (capability tool = upstream name, action = tool name,
// read/write class from the tool registry), rate-limited, charged to the
// caller's budgets and audited by the Kernel — one decision per call —
// before it is forwarded.
type Gateway struct {
	cfg      Config
	server   *sdk.Server
	kernel   *talos.Kernel
	registry *capability.ToolRegistry
	handler  http.Handler

	mu        sync.Mutex                    // guards upstreams
	upstreams map[string]*sdk.ClientSession // nil entry: reconnect on next call
}

// New connects to every upstream, lists its tools and registers them on
// the gateway. An upstream that cannot be reached fails New: a gateway
// silently missing tools is worse than one that does not start. Close ends
// the upstream sessions.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	g, err := newGateway(ctx, cfg)
	if err != nil {
		if g != nil {
			g.Close()
		}
		return nil, err
	}
	return g, nil
}

func newGateway(ctx context.Context, cfg Config) (g *Gateway, err error) {
	if cfg.Kernel == nil && cfg.NewKernel == nil {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "mcp: Config.Kernel or Config.NewKernel is required")
	}
	if cfg.Kernel != nil && cfg.Registry == nil {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "mcp: Config.Kernel needs the Config.Registry its authorizer classifies tools with; use NewKernel to derive the registry")
	}
	if len(cfg.Upstreams) == 0 {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "mcp: Config.Upstreams is empty")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Implementation == nil {
		cfg.Implementation = &sdk.Implementation{Name: "talos-gateway", Version: talos.Version}
	}
	g = &Gateway{
		cfg:       cfg,
		server:    sdk.NewServer(cfg.Implementation, nil),
		upstreams: map[string]*sdk.ClientSession{},
	}
	var derived []capability.ToolEntry
	names := make([]string, 0, len(cfg.Upstreams))
	for n := range cfg.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.ContainsAny(name, "./ ") || name == "" || cfg.Upstreams[name] == nil {
			return g, contracts.Errorf(contracts.CodeInvalidInput, fmt.Sprintf("mcp: invalid upstream name %q", name))
		}
		cs, err := g.connect(ctx, name)
		if err != nil {
			return g, err
		}
		g.upstreams[name] = cs
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				return g, fmt.Errorf("mcp: upstream %s: listing tools: %w", name, err)
			}
			g.addTool(name, tool)
			e := capability.ToolEntry{Tool: name, Action: tool.Name, Class: capability.ClassWrite, RequiresIdempotencyKey: true}
			if tool.Annotations != nil && tool.Annotations.ReadOnlyHint {
				e.Class, e.RequiresIdempotencyKey = capability.ClassRead, false
			}
			derived = append(derived, e)
		}
	}
	g.registry = cfg.Registry
	if g.registry == nil {
		if g.registry, err = capability.NewToolRegistry(derived); err != nil {
			return g, fmt.Errorf("mcp: tool registry: %w", err)
		}
	}
	g.kernel = cfg.Kernel
	if g.kernel == nil {
		if g.kernel, err = cfg.NewKernel(g.registry); err != nil {
			return g, err
		}
		if g.kernel == nil {
			return g, contracts.Errorf(contracts.CodeInvalidInput, "mcp: Config.NewKernel returned no Kernel")
		}
	}
	g.handler = g.newHandler()
	return g, nil
}

// Registry returns the tool registry in effect.
func (g *Gateway) Registry() *capability.ToolRegistry { return g.registry }

// Kernel returns the Kernel that decides the gateway's calls.
func (g *Gateway) Kernel() *talos.Kernel { return g.kernel }

func (g *Gateway) addTool(upstream string, t *sdk.Tool) {
	exposed := *t
	exposed.Name = upstream + "." + t.Name
	g.server.AddTool(&exposed, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return g.call(ctx, upstream, t.Name, req)
	})
}

// connect opens a session with upstream name.
func (g *Gateway) connect(ctx context.Context, name string) (*sdk.ClientSession, error) {
	t, err := g.cfg.Upstreams[name](ctx)
	if err != nil {
		return nil, fmt.Errorf("mcp: upstream %s: %w", name, err)
	}
	client := sdk.NewClient(g.cfg.Implementation, nil)
	cs, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("mcp: upstream %s: %w", name, err)
	}
	return cs, nil
}

// session returns the session with upstream name, reconnecting when the
// last one failed.
func (g *Gateway) session(ctx context.Context, name string) (*sdk.ClientSession, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cs := g.upstreams[name]; cs != nil {
		return cs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ConnectTimeout)
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
func (g *Gateway) drop(name string, cs *sdk.ClientSession) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.upstreams[name] == cs {
		g.upstreams[name] = nil
		cs.Close()
	}
}

// Close ends the upstream sessions. A later call reconnects.
func (g *Gateway) Close() error {
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

// DenyError is the JSON-RPC error of a refused call: code -32000 with the
// contract code ("talos_code") and its HTTP status ("http_status") in
// data, and nothing more.
func DenyError(code string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]any{"talos_code": code, "http_status": contracts.HTTPStatus(code)})
	return &jsonrpc.Error{Code: -32000, Message: "denied: " + code, Data: data}
}

func (g *Gateway) call(ctx context.Context, upstream, tool string, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	// The principal is a typed value in the context: the go-sdk connects
	// each stateless request's session with the HTTP request's context, so
	// its values (the Attester's verified attestation) reach tool handlers.
	did, ok := talos.PrincipalFrom(ctx)
	if !ok || req.Extra == nil || req.Extra.Header == nil {
		return nil, DenyError(contracts.CodeAuthInvalid)
	}
	var team string
	if g.cfg.Team != nil {
		if team, ok = g.cfg.Team(ctx, did); !ok {
			return nil, DenyError(contracts.CodeAuthInvalid)
		}
	}
	args := req.Params.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	canon, err := contracts.Canonicalize(args)
	if err != nil {
		return nil, DenyError(contracts.CodeInvalidInput)
	}
	sum := sha256.Sum256(canon)
	call := talos.Call{
		Request: capability.Request{
			Capability: req.Extra.Header.Get(talos.HeaderCapability),
			Principal:  did, Tool: upstream, Action: tool, ArgsDigest: hex.EncodeToString(sum[:]),
		},
		SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team,
	}
	if g.cfg.Budget != nil {
		call.Budget = g.cfg.Budget(ctx, did, team, g.cfg.Cost)
	}
	var result *sdk.CallToolResult
	out, err := g.kernel.Do(ctx, call, func(ctx context.Context, d capability.Decision) (int64, int, error) {
		cs, err := g.session(ctx, upstream)
		if err != nil {
			return 0, 0, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", err)
		}
		cctx, cancel := context.WithTimeout(ctx, g.cfg.CallTimeout)
		defer cancel()
		res, err := cs.CallTool(cctx, &sdk.CallToolParams{Name: tool, Arguments: json.RawMessage(canon)})
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
		return g.cfg.Cost, http.StatusOK, nil
	})
	if !out.Allowed || err != nil {
		code := out.Code
		if code == "" {
			code = contracts.CodeInternal
		}
		return nil, DenyError(code)
	}
	return result, nil
}

// Handler returns the gateway's HTTP handler, to be served at [Pattern]
// behind a [talos.Attester] whose route table has [Route]. Before the MCP
// handler sees a request it must carry a verified principal and be one
// JSON-RPC 2.0 request or notification of at most MaxBody bytes; every
// refusal, the go-sdk handler's own included, is the contract error body.
// The MCP session is stateless (every POST is attested on its own) and
// answers are always JSON, never an SSE stream.
func (g *Gateway) Handler() http.Handler { return g.handler }

func (g *Gateway) newHandler() http.Handler {
	inner := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return g.server },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := talos.PrincipalFrom(r.Context()); !ok {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeAuthInvalid, "request is not attested"))
			return
		}
		if g.cfg.WriteTimeout > 0 {
			httpx.ExtendWriteDeadline(w, g.cfg.ConnectTimeout+g.cfg.CallTimeout+g.cfg.WriteTimeout)
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "request body too large or unreadable"))
			return
		}
		if err := CheckJSONRPC(body); err != nil {
			talos.WriteError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.Header.Set("Accept", "application/json, text/event-stream")
		inner.ServeHTTP(&errorWriter{ResponseWriter: w, r: r}, r)
	})
}

// CheckJSONRPC accepts one JSON-RPC 2.0 request or notification object.
// Bodies with two keys equal under case folding, at any depth, and
// mis-cased member names are refused (contracts.UnmarshalFields): the MCP
// SDK decodes the body with encoding/json, which matches names without
// regard to case, so "Params" or a second "NAME" inside the arguments would
// otherwise be read one way here and another way upstream. Errors are
// *contracts.Error with code TALOS_INVALID_INPUT.
func CheckJSONRPC(body []byte) error {
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

// errorWriter replaces the MCP handler's plain-text HTTP errors with the
// contract error body.
type errorWriter struct {
	http.ResponseWriter
	r      *http.Request
	failed bool
}

func (e *errorWriter) WriteHeader(status int) {
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

func (e *errorWriter) Write(b []byte) (int, error) {
	if e.failed {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (e *errorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
