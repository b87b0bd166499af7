package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/llm"
	mcpgw "github.com/talosgo/talos/gateway/mcp"
	mcppg "github.com/talosgo/talos/gateway/mcp/postgres"
)

// The MCP tool gateway (gateway/mcp) and the LLM proxy (gateway/llm),
// wired to the core: the Kernel with the server's verifier, RBAC policy,
// limits, budgets and audit log; teams and budgets from the admin API's
// registrations.

// upstreamDialer connects the gateway to one upstream MCP server.
type upstreamDialer = mcpgw.Dialer

// opLLM is the audit surface and attestation opcode of the LLM proxy.
const opLLM = llm.SurfaceID

// enableServices enables the MCP gateway and the LLM proxy when their
// upstreams are configured; mount then serves them.
func (c *core) enableServices(ctx context.Context, s *Server) error {
	// Bearer access tokens on POST /mcp (oauth.go).
	if err := c.enableOAuth(s); err != nil {
		return err
	}
	if len(s.cfg.MCPUpstreams) > 0 {
		var registry *capability.ToolRegistry
		if s.cfg.MCPToolRegistry != "" {
			raw, err := readLimited(s.cfg.MCPToolRegistry, maxToolRegistryFile)
			if err != nil {
				return contracts.Wrap(contracts.CodeInvalidInput, "config: reading the MCP tool registry", err)
			}
			if registry, err = capability.ParseToolRegistry(raw); err != nil {
				return err
			}
		}
		dialers := make(map[string]upstreamDialer, len(s.cfg.MCPUpstreams))
		for _, u := range s.cfg.MCPUpstreams {
			dialers[u.Name] = mcpgw.HTTPUpstream(u.URL, nil)
		}
		if err := c.enableGateway(ctx, s, dialers, registry); err != nil {
			return err
		}
	}
	if s.cfg.LLMUpstream != "" || len(s.cfg.LLMRoutes) > 0 {
		p, err := c.newLLMProxy(s, false)
		if err != nil {
			return err
		}
		c.llm = p
	}
	// MCP servers, LLM upstreams and model groups of the admin API
	// (upstreamadmin.go): applied now, then kept in sync.
	return c.openUpstreamAdmin(ctx, s)
}

// newLLMProxy builds the LLM proxy from the configured upstreams and
// routes; dynamic allows none (the admin API sets them at run time).
func (c *core) newLLMProxy(s *Server, dynamic bool) (*llm.Proxy, error) {
	ups := make([]llm.Upstream, 0, len(s.cfg.LLMUpstreams))
	for _, u := range s.cfg.LLMUpstreams {
		ups = append(ups, llm.Upstream{Name: u.Name, Kind: u.Kind, URL: u.URL, APIKey: string(u.APIKey)})
	}
	return llm.New(llm.Config{
		Upstreams: ups, Routes: s.cfg.LLMRoutes, Dynamic: dynamic,
		Kernel: c.kernel, Upstream: s.cfg.LLMUpstream, APIKey: string(s.cfg.LLMAPIKey),
		PricePer1K: s.cfg.LLMPricePer1K, Timeout: s.cfg.LLMTimeout, WriteTimeout: c.writeTimeout,
		StreamTimeout: s.cfg.LLMStreamTimeout, Models: s.cfg.LLMModels,
		// GET /v1/models asks the Kernel's own authorizer model by model.
		Authorizer: c.admin.Policy().Authorizer(c.verifier),
		Team:       c.teamOf, Budget: c.budgetFor("llm"),
	})
}

// enableGateway connects the MCP gateway to its upstreams; a nil registry
// is derived from the upstreams' annotations. mount then serves it at
// POST /mcp.
func (c *core) enableGateway(ctx context.Context, s *Server, upstreams map[string]upstreamDialer, registry *capability.ToolRegistry) error {
	// Idempotency keys of write tools: on PostgreSQL when the server has
	// it (kept across restarts and shared by replicas), else in memory.
	var idem mcpgw.IdempotencyStore
	if s.db != nil {
		ps, err := mcppg.New(mcppg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix})
		if err != nil {
			return err
		}
		if err := ps.Migrate(ctx); err != nil {
			return err
		}
		if _, err := ps.Purge(ctx); err != nil {
			return err
		}
		idem = ps
	}
	gov, err := c.governanceConfig(ctx, s)
	if err != nil {
		return err
	}
	g, err := mcpgw.New(ctx, mcpgw.Config{
		Upstreams: upstreams, Registry: registry, Cost: s.cfg.MCPCallCost, Idempotency: idem,
		Governance: gov, Dynamic: len(upstreams) == 0,
		// The gateway's verifier knows the tool registry: unknown tools
		// are denied (and never listed), read-only tokens get only reads.
		// The configuration is newKernel's; the gateway keeps its
		// Authorizer to filter tools/list and closes the verifier when a
		// tool-list change replaces it.
		NewKernelConfig: func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
			v, err := c.newVerifier(reg)
			if err != nil {
				return talos.KernelConfig{}, err
			}
			return talos.KernelConfig{
				Authorizer: verifierAuthorizer{c.admin.Policy().Authorizer(v), v},
				Limits:     c.limits, Budget: c.budget, Audit: c.log, Events: c.events, Tracer: c.tracer, Meter: c.meter,
			}, nil
		},
		Team: c.teamOf, Budget: c.budgetFor("mcp"), WriteTimeout: c.writeTimeout,
	})
	if err != nil {
		return err
	}
	c.gateway = g
	s.OnShutdown("mcp-gateway", func(context.Context) error { return g.Close() })
	return c.recoverGoverned(ctx, s, g)
}

// verifierAuthorizer is the RBAC-wrapped verifier of the MCP gateway;
// Close stops the verifier's revocation watch.
type verifierAuthorizer struct {
	capability.Authorizer
	v *capability.Verifier
}

func (a verifierAuthorizer) Close() error { return a.v.Close() }

// teamOf returns the team of the registered principal of an attested
// request; false when its registration is gone.
func (c *core) teamOf(ctx context.Context, did identity.DID) (string, bool) {
	p, ok := c.principalOf(ctx)
	if !ok || p.DID != did.String() {
		return "", false
	}
	return p.TeamID, true
}

// budgetFor reserves against the caller's key and team budgets (admin API).
func (c *core) budgetFor(surface string) func(context.Context, identity.DID, string, int64) *budget.ReserveRequest {
	return func(ctx context.Context, _ identity.DID, _ string, amount int64) *budget.ReserveRequest {
		p, ok := c.principalOf(ctx)
		if !ok {
			return nil
		}
		return c.budgets.request(p, amount, surface)
	}
}

// mountGateway serves the MCP gateway at POST /mcp, attested, for
// registered principals.
func (c *core) mountGateway(mux *http.ServeMux, g *mcpgw.Gateway) {
	h := g.Handler()
	attested := c.attester.Wrap(c.registered(func(w http.ResponseWriter, r *http.Request, _ *principal) { h.ServeHTTP(w, r) }))
	if c.oauth != nil {
		// Bearer access tokens too, and the resource metadata (oauth.go).
		c.oauth.mount(mux, attested)
		return
	}
	mux.Handle(mcpgw.Pattern, attested)
}

// mountLLM serves the LLM proxy at POST /v1/chat/completions and its
// model listing at GET /v1/models, attested, for registered principals.
func (c *core) mountLLM(mux *http.ServeMux, p *llm.Proxy) {
	h, models := p.Handler(), p.ModelsHandler()
	mux.Handle(llm.Pattern, c.attester.Wrap(c.registered(func(w http.ResponseWriter, r *http.Request, _ *principal) { h.ServeHTTP(w, r) })))
	mux.Handle(llm.ModelsPattern, c.attester.Wrap(c.registered(func(w http.ResponseWriter, r *http.Request, _ *principal) { models.ServeHTTP(w, r) })))
}

// llmAuditMeta are the LLM proxy's own audit meta keys: the upstream that
// answered and how a stream ended.
var llmAuditMeta = []string{llm.MetaUpstream, llm.MetaStreamEnd}

// opLLMModels is the audit surface and attestation opcode of the LLM
// proxy's model listing.
const opLLMModels = llm.ModelsSurfaceID

// parseLLMModels reads TALOS_LLM_MODELS: comma-separated model names.
func parseLLMModels(dst *[]string, v string) error {
	var out []string
	for m := range strings.SplitSeq(v, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if len(m) > llm.MaxModelName || strings.ContainsFunc(m, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return errors.New("not a comma-separated list of model names")
		}
		out = append(out, m)
	}
	if len(out) > llm.MaxModels {
		return errors.New("too many models")
	}
	*dst = out
	return nil
}

// llmUpstream is one entry of TALOS_LLM_UPSTREAMS; its key comes from
// the environment only (llmUpstreamKeyEnv).
type llmUpstream struct {
	Name, Kind, URL string
	APIKey          secretBytes
}

// llmRoute is one entry of TALOS_LLM_ROUTES.
type llmRoute = llm.ModelRoute

// llmUpstreamKeyEnv is the environment variable holding the key of the
// upstream named name: TALOS_LLM_API_KEY_ and the name in upper case,
// "-" as "_" (validUpstreamName, shared with the MCP upstreams).
func llmUpstreamKeyEnv(name string) string {
	return llmAPIKeyEnv + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseLLMUpstreams reads TALOS_LLM_UPSTREAMS: name=URL or
// name=anthropic+URL (also openai+URL), comma-separated. URLs and names
// are checked again by llm.New.
func parseLLMUpstreams(dst *[]llmUpstream, v string) error {
	var out []llmUpstream
	seen := map[string]bool{}
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, u, ok := strings.Cut(item, "=")
		if !ok || !validUpstreamName(name) || seen[name] || name == "default" {
			return errors.New("want name=URL entries with distinct names of letters, digits, - and _ (default is TALOS_LLM_UPSTREAM)")
		}
		seen[name] = true
		kind := llm.KindOpenAI
		for _, k := range []string{llm.KindOpenAI, llm.KindAnthropic} {
			if rest, ok := strings.CutPrefix(u, k+"+"); ok {
				kind, u = k, rest
			}
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return errors.New("upstream " + name + ": URL must be http:// or https://")
		}
		out = append(out, llmUpstream{Name: name, Kind: kind, URL: u})
	}
	*dst = out
	return nil
}

// parseLLMRoutes reads TALOS_LLM_ROUTES:
// model=upstream>fallback@prompt:completion (USD per 1000 tokens),
// comma-separated.
func parseLLMRoutes(dst *[]llmRoute, v string) error {
	var out []llmRoute
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		model, rest, ok := strings.Cut(item, "=")
		names, prices, ok2 := strings.Cut(rest, "@")
		prompt, completion, ok3 := strings.Cut(prices, ":")
		if !ok || !ok2 || !ok3 || model == "" {
			return errors.New("want model=upstream>fallback@prompt:completion entries (USD per 1000 tokens)")
		}
		rt := llmRoute{Model: model}
		if err := parseUSDSetting(&rt.PromptPer1K, prompt); err != nil {
			return errors.New("route " + model + ": prompt price: " + err.Error())
		}
		if err := parseUSDSetting(&rt.CompletionPer1K, completion); err != nil {
			return errors.New("route " + model + ": completion price: " + err.Error())
		}
		for n := range strings.SplitSeq(names, ">") {
			if !validUpstreamName(n) {
				return errors.New("route " + model + ": bad upstream name")
			}
			rt.Upstreams = append(rt.Upstreams, n)
		}
		out = append(out, rt)
	}
	*dst = out
	return nil
}

// parseLLMStreamTimeout reads TALOS_LLM_STREAM_TIMEOUT: positive, at most 1h.
func parseLLMStreamTimeout(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Hour {
		return errors.New("not a duration between 0 and 1h (e.g. 10m)")
	}
	*dst = d
	return nil
}

// The core's handles on the two services (nil when not configured).
type (
	mcpGateway = mcpgw.Gateway
	llmProxy   = llm.Proxy
)
