package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Config configures a [Gateway]. One of Kernel, NewKernelConfig or
// NewKernel is required, and at least one upstream.
type Config struct {
	// Kernel decides, rate-limits, charges and audits every call. Its
	// Authorizer must classify tools with Registry (a capability.Verifier
	// built with Config.Registry): set Kernel only with a non-nil Registry,
	// and with Authorizer, the Kernel's own Authorizer, for lists to be
	// served.
	Kernel *talos.Kernel
	// Authorizer is the Authorizer of Kernel. tools/list shows a caller
	// the tools it would allow that caller; without it (Kernel or
	// NewKernel without Authorizer) every list is refused (TALOS_DENIED),
	// because the gateway cannot tell what the caller may see.
	Authorizer capability.Authorizer
	// NewKernelConfig, used when Kernel is nil, returns the configuration
	// of the Kernel for the registry in effect (Registry, or the one
	// derived from the upstreams' annotations); the gateway builds the
	// Kernel with talos.NewKernel and filters lists with its Authorizer.
	// With a derived registry it is called again whenever an upstream's
	// tool list changes the registry. The Authorizers it returns belong to
	// the gateway: each is closed, if it is an io.Closer (a
	// capability.Verifier is), when a new one replaces it and by Close.
	// Preferred over NewKernel.
	NewKernelConfig func(*capability.ToolRegistry) (talos.KernelConfig, error)
	// NewKernel, used when Kernel and NewKernelConfig are nil, returns the
	// Kernel for the registry in effect, like NewKernelConfig but without
	// the Authorizer, so that lists are refused unless Authorizer is set.
	NewKernel func(*capability.ToolRegistry) (*talos.Kernel, error)
	// Upstreams maps each upstream's name to its dialer. Its tools are
	// served as "<name>.<tool>"; names are non-empty and hold no '.', '/'
	// or space.
	Upstreams map[string]Dialer
	// Registry classifies each tool as a read or a write (capability tool
	// = the upstream name, action = the tool name); tools it does not list
	// are never listed and every call to them is denied (UNKNOWN_TOOL). If
	// nil, it is derived from the upstreams' annotations: a tool is a read
	// only when it declares readOnlyHint, and every other tool is a write
	// that requires an idempotency key.
	Registry *capability.ToolRegistry
	// Idempotency remembers the outcome of calls to tools whose registry
	// entry requires an idempotency key (see [IdempotencyKeyMeta]). If
	// nil, a [MemIdempotencyStore] with its defaults.
	Idempotency IdempotencyStore
	// IdempotencyTTL is how long a key is remembered (default
	// DefaultIdempotencyTTL).
	IdempotencyTTL time.Duration
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
	// and the listing of its tools (default DefaultConnectTimeout).
	CallTimeout, ConnectTimeout time.Duration
	// WriteTimeout is the server's write deadline per response
	// (http.Server.WriteTimeout): the handler extends a request's deadline
	// to ConnectTimeout+CallTimeout+WriteTimeout from when it starts. Zero
	// (a server without a write deadline) leaves the deadline alone.
	WriteTimeout time.Duration
	// Implementation names the gateway to its clients and upstreams. If
	// nil, "talos-gateway" at talos.Version.
	Implementation *sdk.Implementation
	// OnRefresh, if set, is called after an upstream's tool list was
	// listed again (after notifications/tools/list_changed or a
	// reconnection), with the error if listing or installing it failed.
	OnRefresh func(upstream string, err error)
	// Dynamic lets New start with no upstream: upstreams are then added
	// and removed at run time ([Gateway.AddUpstream],
	// [Gateway.RemoveUpstream]).
	Dynamic bool
	// Governance, if set, governs every call to a tool the registry
	// classifies as a write (TGA): see "Governed writes" in the package
	// documentation.
	Governance *GovernanceConfig
}

// A Gateway is an MCP server whose tools are the tools of its upstream
// MCP servers, named "<upstream>.<tool>". Every call is attested,
// authorized (capability tool = upstream name, action = tool name,
// read/write class from the tool registry), rate-limited, charged to the
// caller's budgets and audited by the Kernel — one decision per call —
// before it is forwarded. tools/list shows each caller only the tools its
// capability allows, decided by the same Authorizer and audited once.
type Gateway struct {
	cfg     Config
	server  *sdk.Server
	handler http.Handler
	idem    IdempotencyStore
	derived bool // the registry is derived from the upstreams' annotations
	// hasResources, hasPrompts: some upstream offered them at start-up;
	// the gateway then declares and proxies them.
	hasResources, hasPrompts bool

	st  atomic.Pointer[state]
	gov *governance // nil: writes are not governed

	mu        sync.Mutex                    // guards upstreams, tools, closed
	upstreams map[string]*sdk.ClientSession // nil entry: reconnect on next call
	tools     map[string]map[string]*sdk.Tool
	offered   map[string]offer           // resources/prompts each upstream's session declared
	resources map[string]map[string]bool // URIs each upstream last listed
	closed    bool
	stale     bool                   // a refresh ran before New installed the first state
	refreshMu map[string]*sync.Mutex // serializes refreshes per upstream
	dialers   map[string]Dialer      // the upstreams served (Config.Upstreams, then AddUpstream/RemoveUpstream)
	wg        sync.WaitGroup         // refreshes in flight
}

// state is what a tool-list change replaces at once.
type state struct {
	kernel   *talos.Kernel
	authz    capability.Authorizer // nil: lists are refused
	registry *capability.ToolRegistry
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
	if cfg.Kernel == nil && cfg.NewKernel == nil && cfg.NewKernelConfig == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp: Config.Kernel, Config.NewKernelConfig or Config.NewKernel is required")
	}
	if cfg.Kernel != nil && cfg.Registry == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp: Config.Kernel needs the Config.Registry its authorizer classifies tools with; use NewKernelConfig to derive the registry")
	}
	if len(cfg.Upstreams) == 0 && !cfg.Dynamic {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp: Config.Upstreams is empty")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.Implementation == nil {
		cfg.Implementation = &sdk.Implementation{Name: "talos-gateway", Version: talos.Version}
	}
	g = &Gateway{
		cfg:       cfg,
		upstreams: map[string]*sdk.ClientSession{},
		offered:   map[string]offer{},
		resources: map[string]map[string]bool{},
		tools:     map[string]map[string]*sdk.Tool{},
		refreshMu: map[string]*sync.Mutex{},
		dialers:   map[string]Dialer{},
		idem:      cfg.Idempotency,
		derived:   cfg.Registry == nil,
	}
	if g.idem == nil {
		g.idem = NewMemIdempotencyStore(MemIdempotencyConfig{})
	}
	if cfg.Governance != nil {
		if g.gov, err = newGovernance(cfg.Governance); err != nil {
			return g, err
		}
	}
	names := make([]string, 0, len(cfg.Upstreams))
	for n := range cfg.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if !ValidUpstreamName(name) || cfg.Upstreams[name] == nil {
			return g, contracts.New(contracts.CodeInvalidInput, fmt.Sprintf("mcp: invalid upstream name %q", name))
		}
		g.refreshMu[name] = &sync.Mutex{}
		g.dialers[name] = cfg.Upstreams[name]
	}
	for _, name := range names {
		cs, err := g.connect(ctx, name)
		if err != nil {
			return g, err
		}
		// A list_changed notification may refresh this upstream from now
		// on: the first listing holds its refresh lock, so a refresh lists
		// after it, and the maps are written under g.mu.
		mu := g.refreshMu[name]
		mu.Lock()
		g.mu.Lock()
		g.upstreams[name] = cs
		g.mu.Unlock()
		tools, err := listTools(ctx, name, cs)
		if err != nil {
			mu.Unlock()
			return g, err
		}
		r, p := offers(cs)
		g.mu.Lock()
		g.tools[name] = tools
		g.offered[name] = offer{resources: r, prompts: p}
		g.mu.Unlock()
		mu.Unlock()
	}
	g.mu.Lock()
	all, offered := g.snapshot()
	g.mu.Unlock()
	// The gateway answers the list, call, read and get methods itself (see
	// methods): it declares the capabilities and registers nothing.
	caps := &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{}}
	for _, o := range offered {
		if o.resources {
			caps.Resources, g.hasResources = &sdk.ResourceCapabilities{}, true
		}
		if o.prompts {
			caps.Prompts, g.hasPrompts = &sdk.PromptCapabilities{}, true
		}
	}
	g.server = sdk.NewServer(cfg.Implementation, &sdk.ServerOptions{Capabilities: caps})
	g.server.AddReceivingMiddleware(g.methods)
	reg := cfg.Registry
	if reg == nil {
		if reg, err = deriveRegistry(all, offered); err != nil {
			return g, err
		}
	}
	st, err := g.newState(reg)
	if err != nil {
		return g, err
	}
	g.st.Store(st)
	g.mu.Lock()
	stale := g.stale
	g.mu.Unlock()
	if stale && g.derived {
		// A refresh during start-up found no state to rebuild.
		if err := g.reinstall(); err != nil {
			return g, err
		}
	}
	g.handler = g.newHandler()
	return g, nil
}

// newState builds the Kernel for reg; with Config.Kernel it is that
// Kernel.
func (g *Gateway) newState(reg *capability.ToolRegistry) (*state, error) {
	st := &state{registry: reg, kernel: g.cfg.Kernel, authz: g.cfg.Authorizer}
	switch {
	case g.cfg.Kernel != nil:
	case g.cfg.NewKernelConfig != nil:
		kc, err := g.cfg.NewKernelConfig(reg)
		if err != nil {
			return nil, err
		}
		if st.kernel, err = talos.NewKernel(kc); err != nil {
			return nil, contracts.Wrap(contracts.CodeInvalidInput, "mcp: the Kernel configuration", err)
		}
		st.authz = kc.Authorizer
	default:
		k, err := g.cfg.NewKernel(reg)
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, contracts.New(contracts.CodeInvalidInput, "mcp: Config.NewKernel returned no Kernel")
		}
		st.kernel = k
	}
	return st, nil
}

// listTools lists the tools of an upstream session, bounded and checked:
// names must be usable as capability actions.
func listTools(ctx context.Context, name string, cs *sdk.ClientSession) (map[string]*sdk.Tool, error) {
	tools := map[string]*sdk.Tool{}
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, contracts.Wrap(contracts.CodeMCPProtocol, "mcp: upstream "+name+": listing tools", err)
		}
		if err := checkToolName(tool.Name); err != nil {
			return nil, contracts.Wrap(contracts.CodeMCPProtocol, "mcp: upstream "+name+": tool "+strconv.Quote(tool.Name), err)
		}
		if _, dup := tools[tool.Name]; dup {
			return nil, contracts.New(contracts.CodeMCPProtocol, "mcp: upstream "+name+" lists tool "+strconv.Quote(tool.Name)+" twice")
		}
		if len(tools) >= capability.MaxRegistryTools {
			return nil, contracts.New(contracts.CodeMCPProtocol, "mcp: upstream "+name+" lists too many tools")
		}
		tools[tool.Name] = tool
	}
	return tools, nil
}

// checkToolName accepts the names an upstream may give a tool: 1 to 128
// bytes of ASCII letters, digits, '_', '-' and '.' (the MCP tool-name
// rule).
func checkToolName(n string) error {
	if n == "" || len(n) > 128 {
		return contracts.New(contracts.CodeMCPProtocol, "tool name must be 1 to 128 bytes")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return contracts.New(contracts.CodeMCPProtocol, "tool name holds a character outside [A-Za-z0-9_.-]")
		}
	}
	return nil
}

// deriveRegistry classifies every tool by its readOnlyHint; reading an
// upstream's resources and getting its prompts are reads.
func deriveRegistry(tools map[string]map[string]*sdk.Tool, offered map[string]offer) (*capability.ToolRegistry, error) {
	var entries []capability.ToolEntry
	for up, o := range offered {
		if o.resources {
			entries = append(entries, capability.ToolEntry{Tool: up, Action: ActionReadResource, Class: capability.ClassRead})
		}
		if o.prompts {
			entries = append(entries, capability.ToolEntry{Tool: up, Action: ActionGetPrompt, Class: capability.ClassRead})
		}
	}
	for up, ts := range tools {
		for name, tool := range ts {
			e := capability.ToolEntry{Tool: up, Action: name, Class: capability.ClassWrite, RequiresIdempotencyKey: true}
			if tool.Annotations != nil && tool.Annotations.ReadOnlyHint {
				e.Class, e.RequiresIdempotencyKey = capability.ClassRead, false
			}
			entries = append(entries, e)
		}
	}
	reg, err := capability.NewToolRegistry(entries)
	if err != nil {
		return nil, fmt.Errorf("mcp: tool registry: %w", err)
	}
	return reg, nil
}

// Registry returns the tool registry in effect.
func (g *Gateway) Registry() *capability.ToolRegistry { return g.st.Load().registry }

// Kernel returns the Kernel that decides the gateway's calls.
func (g *Gateway) Kernel() *talos.Kernel { return g.st.Load().kernel }

// Tools returns the names of the tools the gateway serves now
// ("<upstream>.<tool>"), sorted, whoever may call them.
func (g *Gateway) Tools() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var names []string
	for up, ts := range g.tools {
		for n := range ts {
			names = append(names, up+"."+n)
		}
	}
	sort.Strings(names)
	return names
}

// tool returns upstream's tool name as last listed.
func (g *Gateway) tool(upstream, name string) (*sdk.Tool, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.tools[upstream][name]
	return t, ok
}

// connect opens a session with upstream name. The session listens for
// notifications/tools/list_changed and refreshes the tool list on it.
func (g *Gateway) connect(ctx context.Context, name string) (*sdk.ClientSession, error) {
	g.mu.Lock()
	dial := g.dialers[name]
	g.mu.Unlock()
	if dial == nil {
		return nil, fmt.Errorf("mcp: upstream %s: %w", name, ErrUnknownUpstream)
	}
	t, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("mcp: upstream %s: %w", name, err)
	}
	client := sdk.NewClient(g.cfg.Implementation, &sdk.ClientOptions{
		ToolListChangedHandler: func(_ context.Context, req *sdk.ToolListChangedRequest) {
			if cs, ok := req.GetSession().(*sdk.ClientSession); ok {
				g.refreshAsync(name, cs)
			}
		},
	})
	cs, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("mcp: upstream %s: %w", name, err)
	}
	return cs, nil
}

// refreshAsync lists upstream name's tools again off the notification's
// goroutine (the session's reader must not wait for its own answer).
func (g *Gateway) refreshAsync(name string, cs *sdk.ClientSession) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ConnectTimeout)
		defer cancel()
		err := g.refresh(ctx, name, cs)
		if g.cfg.OnRefresh != nil {
			g.cfg.OnRefresh(name, err)
		}
	}()
}

// refresh lists the tools of upstream name on session cs and installs
// them: tools that disappeared are refused from then on, new ones are
// listed and, with a derived registry, classified (the Kernel is rebuilt
// for the new registry). On failure the previous list stays, and tools it
// does not classify stay denied.
func (g *Gateway) refresh(ctx context.Context, name string, cs *sdk.ClientSession) error {
	mu := g.refreshLock(name)
	mu.Lock()
	defer mu.Unlock()
	tools, err := listTools(ctx, name, cs)
	if err != nil {
		return err
	}
	g.mu.Lock()
	if g.upstreams[name] != cs || g.closed {
		g.mu.Unlock()
		return nil // a newer session's list wins
	}
	g.tools[name] = tools
	r, p := offers(cs)
	g.offered[name] = offer{resources: r, prompts: p}
	all, offered := g.snapshot()
	cur := g.st.Load()
	if cur == nil {
		g.stale = true // New installs the first state and rebuilds it
	}
	g.mu.Unlock()
	if !g.derived || cur == nil {
		return nil
	}
	reg, err := deriveRegistry(all, offered)
	if err != nil {
		return err
	}
	st, err := g.newState(reg)
	if err != nil {
		return err
	}
	// Refreshes of different upstreams may race here: install only over
	// the state this registry was derived from, else derive again.
	if !g.st.CompareAndSwap(cur, st) {
		closeAuthz(st, cur)
		return g.reinstall()
	}
	closeAuthz(cur, st)
	return nil
}

// snapshot copies the tool lists and offers; g.mu must be held.
func (g *Gateway) snapshot() (map[string]map[string]*sdk.Tool, map[string]offer) {
	all := make(map[string]map[string]*sdk.Tool, len(g.tools))
	for k, v := range g.tools {
		all[k] = v
	}
	offered := make(map[string]offer, len(g.offered))
	for k, v := range g.offered {
		offered[k] = v
	}
	return all, offered
}

// reinstall derives the registry from the current lists and installs it.
func (g *Gateway) reinstall() error {
	for {
		g.mu.Lock()
		all, offered := g.snapshot()
		g.mu.Unlock()
		reg, err := deriveRegistry(all, offered)
		if err != nil {
			return err
		}
		cur := g.st.Load()
		st, err := g.newState(reg)
		if err != nil {
			return err
		}
		if g.st.CompareAndSwap(cur, st) {
			closeAuthz(cur, st)
			return nil
		}
		closeAuthz(st, cur)
	}
}

// closeAuthz closes old's Authorizer when it is an io.Closer that st does
// not share (calls already holding it keep working: a closed Verifier
// asks the revocation store on every decision).
func closeAuthz(old, st *state) {
	if old == nil || old.kernel == nil || old.authz == nil || (st != nil && st.authz == old.authz) {
		return
	}
	if c, ok := old.authz.(io.Closer); ok {
		c.Close()
	}
}

// session returns the session with upstream name, reconnecting when the
// last one failed; a new session's tool list replaces the old one.
func (g *Gateway) session(ctx context.Context, name string) (*sdk.ClientSession, error) {
	g.mu.Lock()
	if cs := g.upstreams[name]; cs != nil {
		g.mu.Unlock()
		return cs, nil
	}
	g.mu.Unlock()
	mu := g.refreshLock(name)
	mu.Lock()
	g.mu.Lock()
	if cs := g.upstreams[name]; cs != nil || g.closed || g.dialers[name] == nil {
		g.mu.Unlock()
		mu.Unlock()
		if cs == nil {
			return nil, contracts.New(contracts.CodeUpstream5xx, "mcp: gateway closed")
		}
		return cs, nil
	}
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ConnectTimeout)
	defer cancel()
	cs, err := g.connect(ctx, name)
	if err != nil {
		mu.Unlock()
		return nil, err
	}
	g.mu.Lock()
	if g.closed || g.dialers[name] == nil { // Close or RemoveUpstream ran while connecting
		g.mu.Unlock()
		mu.Unlock()
		cs.Close()
		return nil, contracts.New(contracts.CodeUpstream5xx, "mcp: gateway closed or upstream removed")
	}
	g.upstreams[name] = cs
	g.mu.Unlock()
	mu.Unlock()
	// The upstream may have changed while the gateway was away.
	err = g.refresh(ctx, name, cs)
	if g.cfg.OnRefresh != nil {
		g.cfg.OnRefresh(name, err)
	}
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

// Close ends the upstream sessions and waits for tool-list refreshes in
// flight. Calls after Close fail (UPSTREAM_5XX).
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	var errs []error
	for name, cs := range g.upstreams {
		if cs != nil {
			errs = append(errs, cs.Close())
		}
		g.upstreams[name] = nil
	}
	g.mu.Unlock()
	g.wg.Wait()
	if g.cfg.NewKernelConfig != nil && g.cfg.Kernel == nil {
		closeAuthz(g.st.Load(), nil)
	}
	return errors.Join(errs...)
}

// DenyError is the JSON-RPC error of a refused call: code -32000 with the
// contract code ("talos_code") and its HTTP status ("http_status") in
// data, and nothing more.
func DenyError(code string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]any{"talos_code": code, "http_status": contracts.HTTPStatus(contracts.Code(code))})
	return &jsonrpc.Error{Code: -32000, Message: "denied: " + code, Data: data}
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
			talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "request is not attested"))
			return
		}
		if g.cfg.WriteTimeout > 0 {
			d := g.cfg.ConnectTimeout + g.cfg.CallTimeout + g.cfg.WriteTimeout
			if g.gov != nil {
				d += g.gov.cfg.ApprovalTimeout // a governed write may wait for a human
			}
			httpx.ExtendWriteDeadline(w, d)
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "request body too large or unreadable"))
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
		return contracts.New(contracts.CodeInvalidInput, "body must be one JSON-RPC 2.0 request or notification")
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
		talos.WriteError(e.ResponseWriter, e.r, contracts.New(code, "MCP request refused: "+strings.ToLower(http.StatusText(status))))
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
