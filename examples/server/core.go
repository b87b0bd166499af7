package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/note"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	auditfile "github.com/talosgo/talos/audit/file"
	auditpg "github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/budget"
	budgetredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/capability"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// core holds the trust machinery every surface shares: the capability
// verifier and its stores, RBAC, the principal registry used by HTTP
// attestation, the audit log, budgets, rate limits and the Kernel that
// composes them. It is built only from the library's public packages.
type core struct {
	wallet *identity.Wallet

	verifier    *capability.Verifier
	revocations capability.RevocationStore
	nonces      identity.NonceStore
	rbac        rbacPolicy
	principals  *principalRegistry
	admin       adminStore // persisted principals, RBAC and budgets
	// routes are the attested routes of every enabled surface; attester
	// verifies them, and a2aRoutes runs the A2A surface through the Kernel.
	routes    *talos.RouteTable
	attester  *talos.Attester
	a2aRoutes *talos.Middleware

	log         *audit.Log
	logVerifier note.Verifier
	logStore    audit.Store
	tiles       *auditfile.Store // the file store, whose tiles are served under /tlog/, or nil
	events      *audit.EventBuilder
	cpCache     checkpointCache
	// auditPublic serves entry bytes to anyone (TALOS_AUDIT_PUBLIC);
	// otherwise only requests isAuditReader admits read them.
	auditPublic   bool
	isAuditReader func(*http.Request) bool
	// writeTimeout is the server's write deadline per response; gateway
	// calls extend it by their upstream deadline.
	writeTimeout time.Duration

	budget  budget.Budget
	budgets budgetTable // configured key and team budgets
	limits  *budget.Limits
	kernel  *talos.Kernel
	tracer  trace.Tracer

	a2a     *a2aService
	gateway *mcpGateway // nil without upstream MCP servers
	llm     *llmProxy   // nil without an LLM upstream
}

// logOrigin is the C2SP origin line of the server's audit log.
const logOrigin = "talos.local/audit"

// Surfaces (audit surface ids and attestation opcodes) of the core routes.
const (
	opAuthorize  = "kernel.authorize"
	opMCPGateway = "mcp.gateway"
)

// rateLLM is the rate-limit surface of the LLM proxy.
const rateLLM = "llm"

// Default rate limits per surface and principal (TALOS_RATE_LIMITS
// overrides them).
var defaultRates = map[string]budget.Limit{
	opAuthorize:  budget.PerSecond(200),
	opMCPGateway: budget.PerSecond(50),
	rateLLM:      budget.PerSecond(20),
	opA2A:        budget.PerSecond(100),
}

func newCore(ctx context.Context, s *Server) (*core, error) {
	c := &core{wallet: s.wallet}
	var err error
	if s.db != nil {
		c.admin, err = openPGAdminStore(ctx, s.db.Primary(), s.cfg.tablePrefix)
	} else {
		c.admin, err = openFileAdminStore(filepath.Join(s.cfg.DataDir, adminStateFile))
	}
	if err != nil {
		return nil, err
	}
	c.principals = newPrincipalRegistry(c.admin)
	if err := c.loadAdmin(ctx); err != nil {
		return nil, err
	}

	// Capability stores: Redis when configured (revocations reach every
	// replica's cache through pub/sub), memory otherwise.
	if s.redis != nil {
		rs := capredis.NewRevocationStore(s.redis, capredis.Options{})
		c.revocations = rs
		c.nonces = capredis.NewReplayStore(s.redis, capredis.Options{})
	} else {
		c.revocations = capability.NewMemRevocationStore(nil)
		c.nonces = identity.NewMemoryNonceStore(1 << 20)
	}
	v, err := c.newVerifier(nil)
	if err != nil {
		return nil, err
	}
	c.verifier = v

	// Audit log: the durable file store in the data directory, or
	// PostgreSQL when several replicas share one log.
	signer, err := audit.NewNoteSigner(logOrigin, s.wallet.Signer())
	if err != nil {
		return nil, err
	}
	c.logVerifier, err = audit.NewVerifier(logOrigin, s.wallet.PublicKey())
	if err != nil {
		return nil, err
	}
	if c.logStore, err = c.openAuditStore(ctx, s); err != nil {
		return nil, err
	}
	c.log, err = audit.New(ctx, audit.Config{Store: c.logStore, Signer: signer, Verifier: c.logVerifier})
	if err != nil {
		return nil, err
	}
	c.auditPublic, c.isAuditReader, c.writeTimeout = s.cfg.AuditPublic, s.isAdmin, s.cfg.WriteTimeout
	// A checkpoint is published at start, every CheckpointInterval while
	// the log grows, and at shutdown (before the store closes: hooks run
	// newest first), so tile clients see a fresh tree head without anyone
	// calling GET /v1/audit/checkpoint.
	if err := c.publishCheckpoint(ctx); err != nil {
		return nil, err
	}
	if s.cfg.CheckpointInterval > 0 {
		s.Go("checkpoint-publisher", c.checkpointPublisher(s.cfg.CheckpointInterval, func(err error) {
			s.log.Warn("audit checkpoint publication failed; retrying at the next interval", "err", err)
		}))
	}
	s.OnShutdown("audit-checkpoint", c.publishCheckpoint)
	allow := map[string][]string{}
	for _, op := range []string{opAuthorize, opMCPGateway, opLLM, opA2A, "admin"} {
		allow[op] = []string{"decision_reason", "capability_hash", "tool", "action", "error_code", "budget_reservation", "budget_warned", "cost_micros"}
	}
	allow[opConfig] = []string{"config_kind", "config_name", "config_version", "config_digest", "config_previous_digest"}
	c.events, err = audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: allow})
	if err != nil {
		return nil, err
	}

	// Budgets and rate limits: Redis when configured, memory otherwise.
	var rates budget.RateStore
	if s.redis != nil {
		rb, err := budgetredis.New(s.redis, budgetredis.Config{Timeout: 2 * time.Second})
		if err != nil {
			return nil, err
		}
		c.budget = rb
		rr, err := budgetredis.NewRates(s.redis, "")
		if err != nil {
			return nil, err
		}
		rates = rr
	} else {
		mb, err := budget.NewMemory(budget.MemoryConfig{})
		if err != nil {
			return nil, err
		}
		c.budget = mb
		rates = budget.NewMemoryRates(nil)
	}
	limits := maps.Clone(defaultRates)
	maps.Copy(limits, s.cfg.RateLimits)
	c.limits, err = budget.NewLimits(budget.LimiterConfig{
		Store: rates, Surface: opAuthorize, Limit: limits[opAuthorize], Timeout: 2 * time.Second,
	}, limits)
	if err != nil {
		return nil, err
	}

	c.tracer = s.tracer
	if c.kernel, err = c.newKernel(c.verifier); err != nil {
		return nil, err
	}
	if c.a2a, err = newA2AService(ctx, c, s); err != nil {
		return nil, err
	}
	if len(s.cfg.MCPUpstreams) > 0 {
		var registry *capability.ToolRegistry
		if s.cfg.MCPToolRegistry != "" {
			raw, err := readLimited(s.cfg.MCPToolRegistry, maxToolRegistryFile)
			if err != nil {
				return nil, contracts.Wrap(contracts.CodeInvalidInput, "config: reading the MCP tool registry", err)
			}
			if registry, err = capability.ParseToolRegistry(raw); err != nil {
				return nil, err
			}
		}
		dialers := make(map[string]upstreamDialer, len(s.cfg.MCPUpstreams))
		for _, u := range s.cfg.MCPUpstreams {
			dialers[u.Name] = func(context.Context) (mcp.Transport, error) {
				return &mcp.StreamableClientTransport{Endpoint: u.URL, MaxRetries: -1, DisableStandaloneSSE: true}, nil
			}
		}
		if err := c.enableGateway(ctx, s, dialers, registry); err != nil {
			return nil, err
		}
	}
	if s.cfg.LLMUpstream != "" {
		c.llm = &llmProxy{
			core: c, upstream: s.cfg.LLMUpstream, apiKey: string(s.cfg.LLMAPIKey),
			client: &http.Client{}, pricePer1K: s.cfg.LLMPricePer1K, timeout: s.cfg.LLMTimeout,
		}
	}
	if err := c.buildRoutes(); err != nil {
		return nil, err
	}
	return c, nil
}

// newVerifier returns a capability verifier trusting only the server's own
// issuer key, sharing the server's revocation and replay stores. A non-nil
// registry classifies tool actions: unlisted ones are denied and read-only
// tokens get only reads.
func (c *core) newVerifier(registry *capability.ToolRegistry) (*capability.Verifier, error) {
	return capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{c.wallet.DID()},
		Revocations:    c.revocations,
		Replay:         c.nonces,
		Audience:       c.wallet.DID().String(),
		Registry:       registry,
	})
}

// newKernel returns a Kernel deciding with v and the server's RBAC policy,
// sharing the core's rate limits, budgets and audit log.
func (c *core) newKernel(v *capability.Verifier) (*talos.Kernel, error) {
	return talos.NewKernel(talos.KernelConfig{
		Authorizer: authorizer{v: v, rbac: &c.rbac},
		Limits:     c.limits,
		Budget:     c.budget,
		Audit:      c.log,
		Events:     c.events,
		Tracer:     c.tracer,
	})
}

// authorizer is a capability.Authorizer: the capability verifier, then the
// server's current RBAC policy when it has any bindings.
type authorizer struct {
	v    *capability.Verifier
	rbac *rbacPolicy
}

func (a authorizer) Authorize(ctx context.Context, req capability.Request) (capability.Decision, error) {
	d, err := a.v.Authorize(ctx, req)
	if err != nil || !d.Allowed {
		return d, err
	}
	if p := a.rbac.current(); p != nil {
		if ok, _ := p.CheckTool(req.Principal.String(), req.Tool, req.Action, req.Scope); !ok {
			d.Allowed = false
			d.Reason = capability.ReasonRBACDenied
		}
	}
	return d, nil
}

// rbacPolicy is the server's mutable RBAC policy: roles and bindings edited
// through the admin API, compiled into an immutable capability.RBAC that
// requests read without locking.
type rbacPolicy struct {
	mu       sync.Mutex // guards roles and bindings
	roles    map[string]capability.Role
	bindings map[string]capability.Binding

	compiled atomic.Pointer[capability.RBAC] // nil: no bindings, RBAC not enforced
}

func (p *rbacPolicy) current() *capability.RBAC { return p.compiled.Load() }

// set replaces a role or a binding (either may be nil) and recompiles. A
// policy that does not compile is refused and nothing changes; otherwise
// commit (which persists the change) runs before the new policy is used,
// and its failure also leaves everything unchanged.
func (p *rbacPolicy) set(role *capability.Role, binding *namedBinding, commit func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	roles := maps.Clone(p.roles)
	bindings := maps.Clone(p.bindings)
	if roles == nil {
		roles, bindings = map[string]capability.Role{}, map[string]capability.Binding{}
	}
	if role != nil {
		roles[role.ID] = *role
	}
	if binding != nil {
		bindings[binding.ID] = binding.Binding
	}
	compiled, err := compileRBAC(roles, bindings)
	if err != nil {
		return err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return err
		}
	}
	p.roles, p.bindings = roles, bindings
	p.compiled.Store(compiled)
	return nil
}

// namedBinding is a binding with its admin API id.
type namedBinding struct {
	ID string
	capability.Binding
}

// compileRBAC compiles even without bindings, so that an invalid role is
// refused when it is put rather than when a binding first uses it; it
// returns nil (RBAC not enforced) when there is no binding.
func compileRBAC(roles map[string]capability.Role, bindings map[string]capability.Binding) (*capability.RBAC, error) {
	rs := make([]capability.Role, 0, len(roles))
	for _, id := range slices.Sorted(maps.Keys(roles)) {
		rs = append(rs, roles[id])
	}
	bs := make([]capability.Binding, 0, len(bindings))
	for _, id := range slices.Sorted(maps.Keys(bindings)) {
		bs = append(bs, bindings[id])
	}
	compiled, err := capability.NewRBAC(capability.RBACConfig{Roles: rs, Bindings: bs})
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	return compiled, nil
}

// principalRegistry maps attestation key ids to registered principals. Only
// registered keys can sign requests: an unknown key id is not authenticated.
// A principal's key id is its did:key. Registrations are persisted in the
// admin store. When that store is shared by replicas (PostgreSQL), a cached
// registration is re-read after principalCacheTTL, so a key registered or
// deleted on one replica takes effect on the others within that time.
type principalRegistry struct {
	m      sync.Map   // key id → cachedPrincipal
	store  adminStore // nil: memory only
	shared bool       // store is shared with other replicas
	now    func() time.Time
}

type cachedPrincipal struct {
	p      *principal
	loaded time.Time
}

// principalCacheTTL bounds how long a replica trusts its cached view of a
// registration held in a shared store.
const principalCacheTTL = 30 * time.Second

type principal struct {
	ID        string    `json:"principal_id"`
	DID       string    `json:"did"`
	TeamID    string    `json:"team_id"`
	CreatedAt time.Time `json:"created_at"`
	pub       ed25519.PublicKey
}

// principalFromDoc reads a stored registration.
func principalFromDoc(raw []byte) (*principal, error) {
	var p principal
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	did, err := identity.ParseDID(p.DID)
	if err != nil {
		return nil, err
	}
	p.pub = did.PublicKey()
	return &p, nil
}

func newPrincipalRegistry(store adminStore) *principalRegistry {
	_, shared := store.(*pgAdminStore)
	return &principalRegistry{store: store, shared: shared, now: time.Now}
}

// ResolveKey implements identity.KeyResolver.
func (r *principalRegistry) ResolveKey(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
	p, err := r.lookup(ctx, keyID)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, contracts.Errorf(contracts.CodeAuthInvalid, "unknown key id")
	}
	return p.pub, nil
}

// lookup returns the principal of keyID, or nil when it is not registered.
// An error means the admin store did not answer.
func (r *principalRegistry) lookup(ctx context.Context, keyID string) (*principal, error) {
	if v, ok := r.m.Load(keyID); ok {
		c := v.(cachedPrincipal)
		if !r.shared || r.now().Sub(c.loaded) < principalCacheTTL {
			return c.p, nil
		}
	}
	if r.store == nil || !strings.HasPrefix(keyID, "did:key:z") || len(keyID) > maxKeyIDLen {
		return nil, nil
	}
	raw, ok, err := r.store.get(ctx, docPrincipal, keyID)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "principal registry unavailable", err).WithRetryable(true)
	}
	if !ok {
		r.m.Delete(keyID)
		return nil, nil
	}
	p, err := principalFromDoc(raw)
	if err != nil || p.DID != keyID {
		return nil, contracts.Errorf(contracts.CodeInternal, "principal registry holds a bad record")
	}
	r.put(p)
	return p, nil
}

// maxKeyIDLen bounds the key ids looked up in the admin store.
const maxKeyIDLen = 128

// get returns a cached principal (one that lookup has just resolved).
func (r *principalRegistry) get(keyID string) (*principal, bool) {
	v, ok := r.m.Load(keyID)
	if !ok {
		return nil, false
	}
	return v.(cachedPrincipal).p, true
}

func (r *principalRegistry) put(p *principal) {
	r.m.Store(p.DID, cachedPrincipal{p: p, loaded: r.now()})
}

func (r *principalRegistry) forget(keyID string) { r.m.Delete(keyID) }

// attestedRoutes lists the attested route of every surface (the MCP
// gateway's and the LLM proxy's too: they are served only when enabled).
// All of them are AttestOnly: the tool and action come from the request
// body and each handler asks the Kernel, or, for A2A, the Kernel middleware
// limits and audits the request and the handler checks participation.
func attestedRoutes() []talos.Route {
	routes := []talos.Route{
		{Pattern: "POST /v1/authorize", Opcode: opAuthorize, AttestOnly: true},
		{Pattern: "POST /mcp", Opcode: opMCPGateway, AttestOnly: true},
		{Pattern: "POST /v1/chat/completions", Opcode: opLLM, AttestOnly: true},
	}
	return append(routes, a2aAttestedRoutes()...)
}

// buildRoutes builds the route table, the Attester (only registered keys
// verify: the principal registry resolves key ids) and the Kernel
// middleware of the A2A surface.
func (c *core) buildRoutes() error {
	var err error
	if c.routes, err = talos.NewRouteTable(attestedRoutes()); err != nil {
		return err
	}
	c.attester, err = talos.NewAttester(talos.AttesterConfig{
		Routes:      c.routes,
		Attestation: identity.AttestationVerifierConfig{Keys: c.principals, Nonces: c.nonces},
	})
	if err != nil {
		return err
	}
	c.a2aRoutes, err = c.kernel.Middleware(talos.KernelMiddlewareConfig{
		Attester: c.attester,
		Prepare: func(r *http.Request, call *talos.Call) {
			call.SurfaceID, call.RateSurface = opA2A, opA2A
			if p, ok := c.principalOf(r.Context()); ok {
				call.Team = p.TeamID
			}
		},
	})
	return err
}

// principalOf returns the registered principal of an attested request
// (ctx is its context, or one derived from it): the registration of the key
// id whose key verified its attestation.
func (c *core) principalOf(ctx context.Context) (*principal, bool) {
	att, ok := talos.AttestationFrom(ctx)
	if !ok {
		return nil, false
	}
	p, ok := c.principals.get(att.KeyID)
	if !ok || !p.pub.Equal(att.PublicKey) {
		return nil, false
	}
	return p, true
}

// registered adapts a handler of an attested route (served behind
// c.attester) to the registration of its principal, answering AUTH_INVALID
// when there is none (a registration deleted since the key was resolved).
func (c *core) registered(h func(http.ResponseWriter, *http.Request, *principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.principalOf(r.Context())
		if !ok {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeAuthInvalid, "unknown principal"))
			return
		}
		h(w, r, p)
	})
}

// mount registers the core routes: kernel API, audit service, and — when
// configured — the MCP gateway and the LLM proxy.
func (c *core) mount(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc) {
	c.mountKernel(mux, admin)
	c.mountAudit(mux, admin)
	c.mountA2A(mux, c.a2a)
	if c.gateway != nil {
		c.mountGateway(mux, c.gateway)
	}
	if c.llm != nil {
		c.mountLLM(mux, c.llm)
	}
}

// enableGateway connects the MCP gateway to its upstreams; mount then
// serves it at POST /mcp.
func (c *core) enableGateway(ctx context.Context, s *Server, upstreams map[string]upstreamDialer, registry *capability.ToolRegistry) error {
	g, err := newMCPGateway(ctx, c, upstreams, registry)
	if err != nil {
		return err
	}
	g.cost = s.cfg.MCPCallCost
	c.gateway = g
	s.OnShutdown("mcp-gateway", func(context.Context) error { return g.Close() })
	return nil
}

// openAuditStore opens the audit log's store per audit.storage_backend:
// "postgres" (the default when PostgreSQL is configured: replicas share one
// log), "memory" (not durable: tests and demos), and otherwise the durable
// file store in the data directory, whose C2SP tiles are served under /tlog/.
func (c *core) openAuditStore(ctx context.Context, s *Server) (audit.Store, error) {
	backend := s.cfg.AuditBackend
	if backend == "" && s.db != nil {
		backend = "postgres"
	}
	switch backend {
	case "postgres":
		if s.db == nil {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "config: audit.storage_backend postgres needs a PostgreSQL URL")
		}
		ps, err := auditpg.New(auditpg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		return ps, nil
	case "memory":
		return audit.NewMemStore(), nil
	}
	fs, err := auditfile.Open(ctx, auditfile.Config{Dir: filepath.Join(s.cfg.DataDir, "audit")})
	if err != nil {
		return nil, err
	}
	s.OnShutdown("audit-log", func(context.Context) error { return fs.Close() })
	c.tiles = fs
	return fs, nil
}

// adminStateFile holds the admin documents without PostgreSQL.
const adminStateFile = "admin.json"

// loadAdmin applies the persisted admin documents: principals, RBAC roles
// and bindings, and budgets. A document that no longer parses stops
// start-up: a server silently missing a registration or a budget is worse
// than one that does not start.
func (c *core) loadAdmin(ctx context.Context) error {
	docs, err := c.admin.all(ctx)
	if err != nil {
		return err
	}
	roles, bindings := map[string]capability.Role{}, map[string]capability.Binding{}
	for _, d := range docs {
		bad := func(err error) error {
			return fmt.Errorf("admin state: %s %q: %w", d.Kind, d.ID, err)
		}
		switch d.Kind {
		case docPrincipal:
			p, err := principalFromDoc(d.Doc)
			if err != nil {
				return bad(err)
			}
			c.principals.put(p)
		case docRole:
			var req roleRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return bad(err)
			}
			roles[d.ID] = capability.Role{ID: d.ID, Permissions: req.Permissions}
		case docBinding:
			var req bindingRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return bad(err)
			}
			bindings[d.ID] = capability.Binding{Principal: req.Principal, Role: req.Role, Scope: req.Scope}
		case docBudget:
			var req budgetRequest
			if err := json.Unmarshal(d.Doc, &req); err != nil {
				return bad(err)
			}
			sc, err := budgetScope(d.ID, req)
			if err != nil {
				return bad(err)
			}
			c.budgets.set(sc)
		}
	}
	compiled, err := compileRBAC(roles, bindings)
	if err != nil {
		return fmt.Errorf("admin state: RBAC policy: %w", err)
	}
	c.rbac.roles, c.rbac.bindings = roles, bindings
	c.rbac.compiled.Store(compiled)
	return nil
}
