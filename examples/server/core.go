package main

import (
	"context"
	"maps"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/note"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	budgetredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/capability"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/auditapi"
	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/kernelapi"
	mcpgw "github.com/talosgo/talos/gateway/mcp"
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
	// admin serves the admin API and holds the principal registry, the
	// RBAC policy and the budgets it edits (persisted in adminStore).
	admin      *admin.Handler
	adminStore admin.Store
	principals *admin.Registry
	kernelAPI  *kernelapi.Handler
	// routes are the attested routes of every enabled surface; attester
	// verifies them, and a2aRoutes runs the A2A surface through the Kernel.
	routes    *talos.RouteTable
	attester  *talos.Attester
	a2aRoutes *talos.Middleware

	log         *audit.Log
	logVerifier note.Verifier
	logStore    audit.Store
	logAppends  *appendWaker      // wakes the live audit stream after this replica's appends (streamwire.go)
	audit       *auditapi.Handler // the audit HTTP service and checkpoint publisher
	events      *audit.EventBuilder
	// writeTimeout is the server's write deadline per response; gateway
	// calls extend it by their upstream deadline.
	writeTimeout time.Duration

	budget  budget.Budget
	budgets budgetView // configured key and team budgets
	limits  *budget.Limits
	kernel  *talos.Kernel
	tracer  trace.Tracer
	meter   metric.Meter // the Kernel's metrics (nil: none)

	a2a     *a2aService
	gateway *mcpGateway // nil without upstream MCP servers
	oauth   *oauthFront // nil without TALOS_OAUTH_ISSUER (oauth.go)
	llm     *llmProxy   // nil without an LLM upstream

	// upstreams administers MCP servers and LLM routing at run time
	// (upstreamadmin.go); governance runs governed writes (governed.go).
	upstreams  *upstreamAdmin
	governance *mcpgw.GovernanceConfig
}

// logOrigin is the C2SP origin line of the server's audit log.
const logOrigin = "talos.local/audit"

// Surfaces (audit surface ids and attestation opcodes) of the core routes.
const (
	opAuthorize  = kernelapi.Opcode
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
	opA2AV1:      budget.PerSecond(100),
	opA2ACompat:  budget.PerSecond(100),
}

func newCore(ctx context.Context, s *Server) (*core, error) {
	c := &core{wallet: s.wallet}
	var err error
	// Capability stores: Redis when configured (revocations reach every
	// replica's cache through pub/sub), memory otherwise. stateScope
	// (statescope.go) reports these choices: keep it in step.
	if s.redis != nil {
		// On a Cluster the revocation feed needs a hash tag (replicas.go).
		rs := capredis.NewRevocationStore(s.redis, capredis.Config{Prefix: s.capabilityRedisPrefix()})
		c.revocations = rs
		c.nonces = capredis.NewReplayStore(s.redis, capredis.Config{Prefix: s.capabilityRedisPrefix()})
	} else {
		c.revocations = capability.NewMemRevocationStore(nil)
		c.nonces = identity.NewMemNonceStore(1 << 20)
	}
	v, err := c.newVerifier(nil)
	if err != nil {
		return nil, err
	}
	c.verifier = v

	// Audit log and its HTTP service (auditwire.go): the file store in
	// the data directory, or PostgreSQL when several replicas share one log.
	if err := c.openAudit(ctx, s); err != nil {
		return nil, err
	}
	c.writeTimeout = s.cfg.WriteTimeout
	allow := map[string][]string{}
	for _, op := range []string{opAuthorize, opMCPGateway, opLLM, opLLMModels, opA2A, "admin"} {
		allow[op] = []string{"decision_reason", "capability_hash", "tool", "action", "error_code", "budget_reservation", "budget_warned", "cost_micros"}
	}
	allow[admin.SurfaceID] = append(allow[admin.SurfaceID], admin.AuditMetaKeys()...)
	addA2AAuditMeta(allow)
	allow[opLLM] = append(allow[opLLM], llmAuditMeta...)
	allow[opMCPGateway] = append(allow[opMCPGateway], oauthAuditMeta...) // bearer requests (oauth.go)
	allow[opConfig] = config.AuditMetaKeys()
	c.events, err = audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: allow})
	if err != nil {
		return nil, err
	}

	// Budgets and rate limits: Redis when configured, memory otherwise.
	var rates budget.RateStore
	if s.redis != nil {
		// The default key prefixes, except under a test's own table prefix
		// (unexported: tests only), which also isolates its Redis keys.
		budgetPrefix, ratesPrefix := "", ""
		if p := s.cfg.tablePrefix; p != "" && p != "talos_" {
			budgetPrefix, ratesPrefix = p+"budget:", p+"rate:"
		}
		rb, err := budgetredis.New(s.redis, budgetredis.Config{Timeout: 2 * time.Second, Prefix: budgetPrefix})
		if err != nil {
			return nil, err
		}
		c.budget = rb
		rr, err := budgetredis.NewRates(s.redis, ratesPrefix)
		if err != nil {
			return nil, err
		}
		rates = rr
	} else {
		mb, err := budget.NewMemBudget(budget.MemBudgetConfig{})
		if err != nil {
			return nil, err
		}
		c.budget = mb
		rates = budget.NewMemRates(nil)
	}
	limits := maps.Clone(defaultRates)
	maps.Copy(limits, s.cfg.RateLimits)
	c.limits, err = budget.NewLimits(budget.LimiterConfig{
		Store: rates, Surface: opAuthorize, Limit: limits[opAuthorize], Timeout: 2 * time.Second,
	}, limits)
	if err != nil {
		return nil, err
	}
	if err := c.openAdmin(ctx, s); err != nil {
		return nil, err
	}

	c.tracer = s.tracer
	c.meter = s.meter("github.com/talosgo/talos")
	if c.kernel, err = c.newKernel(c.verifier); err != nil {
		return nil, err
	}
	if c.a2a, err = newA2AService(ctx, c, s); err != nil {
		return nil, err
	}
	if err := c.enableServices(ctx, s); err != nil {
		return nil, err
	}
	if err := c.buildRoutes(); err != nil {
		return nil, err
	}
	return c, nil
}
