package main

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/gateway/admin"
	adminpg "github.com/talosgo/talos/gateway/admin/postgres"
	"github.com/talosgo/talos/gateway/kernelapi"
	"github.com/talosgo/talos/identity"
)

// This file wires the trust machinery every surface shares: the capability
// verifier and the Kernel, the admin API (gateway/admin: principal
// registry, RBAC policy, budgets), the route table and Attester, and the
// kernel API (gateway/kernelapi).

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
		Authorizer: c.admin.Policy().Authorizer(v),
		Limits:     c.limits,
		Budget:     c.budget,
		Audit:      c.log,
		Events:     c.events,
		Tracer:     c.tracer,
		Meter:      c.meter,
	})
}

// principal is a registered agent (gateway/admin).
type principal = admin.Principal

// budgetView gives the surfaces the key and team budgets of the admin API.
type budgetView struct{ *admin.Budgets }

// request builds the reservation of amount for p's key and team budgets,
// or nil when neither is configured.
func (b budgetView) request(p *principal, amount int64, surface string) *budget.ReserveRequest {
	return b.Reservation(p, amount, surface)
}

// adminStateFile holds the admin documents without PostgreSQL.
const adminStateFile = "admin.json"

// openAdmin opens the admin store (PostgreSQL, shared by replicas, or a
// file in the data directory) and the admin API over it: admin identities
// (attested with opcode "admin", nonces in the shared nonce store) and
// sessions; the bootstrap credential (sealed in the vault) only creates
// the first owner, and DataDir/admin-recovery.json another. A stored
// document that no longer parses stops start-up.
func (c *core) openAdmin(ctx context.Context, s *Server) error {
	if s.db != nil {
		// Listings read the replica (readsplit.go); Get and decisions the primary.
		ps, err := adminpg.New(adminpg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix, Read: readSplit[adminpg.Querier](s.db)})
		if err != nil {
			return err
		}
		if err := ps.Migrate(ctx); err != nil {
			return err
		}
		c.adminStore = ps
	} else {
		fs, err := admin.OpenFile(filepath.Join(s.cfg.DataDir, adminStateFile))
		if err != nil {
			return err
		}
		c.adminStore = fs
	}
	var err error
	c.admin, err = admin.New(ctx, admin.Config{
		Issuer: c.wallet, Store: c.adminStore, Revocations: c.revocations, Budget: c.budget,
		Audit: c.log, Events: c.events, Nonces: c.nonces,
		Bootstrap: s.secrets, BootstrapID: adminHashSecret,
		RecoveryFile: filepath.Join(s.cfg.DataDir, admin.RecoveryFileName), RecoveryKey: s.recoveryKey,
		OnChange: s.adminChanged, // tells the other replicas (replicas.go)
	})
	if err != nil {
		return err
	}
	c.principals, c.budgets = c.admin.Principals(), budgetView{c.admin.Budgets()}
	return nil
}

// attestedRoutes lists the attested route of every surface (the MCP
// gateway's and the LLM proxy's too: they are served only when enabled).
// All of them are AttestOnly: the tool and action come from the request
// body and each handler asks the Kernel, or, for A2A, the Kernel middleware
// limits and audits the request and the handler checks participation.
func attestedRoutes() []talos.Route {
	routes := []talos.Route{
		kernelapi.Route,
		{Pattern: "POST /mcp", Opcode: opMCPGateway, AttestOnly: true},
		{Pattern: "POST /v1/chat/completions", Opcode: opLLM, AttestOnly: true},
		{Pattern: "GET /v1/models", Opcode: opLLMModels, AttestOnly: true},
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
	c.kernelAPI, err = kernelapi.New(kernelapi.Config{
		Kernel: c.kernel, Attester: c.attester, Principals: c.principals, DID: c.wallet.DID(),
		AuditOrigin: logOrigin, AuditKey: c.wallet.PublicKey(), Opcodes: c.servedOpcodes,
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

// principalOf returns the registered principal of an attested request.
func (c *core) principalOf(ctx context.Context) (*principal, bool) {
	return c.principals.FromContext(ctx)
}

// registered adapts a handler of an attested route to the registration of
// its principal (admin.Registry.Registered).
func (c *core) registered(h func(http.ResponseWriter, *http.Request, *principal)) http.Handler {
	return c.principals.Registered(h)
}

// servedOpcodes returns the opcode of every attested route this server
// serves (the MCP gateway and the LLM proxy only when enabled).
func (c *core) servedOpcodes() map[string]string {
	ops := c.routes.Opcodes()
	for pattern, op := range ops {
		if op == opMCPGateway && c.gateway == nil || (op == opLLM || op == opLLMModels) && c.llm == nil {
			delete(ops, pattern)
		}
	}
	return ops
}

// mount registers the core routes: admin API, kernel API, A2A, and — when
// configured — the MCP gateway and the LLM proxy.
func (c *core) mount(mux *http.ServeMux, _ func(tool string) func(http.HandlerFunc) http.HandlerFunc) {
	c.admin.Register(mux)
	c.kernelAPI.Register(mux)
	c.mountA2A(mux, c.a2a)
	if c.gateway != nil {
		c.mountGateway(mux, c.gateway)
	}
	if c.llm != nil {
		c.mountLLM(mux, c.llm)
	}
}
