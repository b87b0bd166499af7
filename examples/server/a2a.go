package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	a2apg "github.com/talosgo/talos/gateway/a2a/postgres"
	"github.com/talosgo/talos/identity"
)

// opA2A is the audit surface and rate-limit surface of the A2A relay.
const opA2A = "a2a"

// a2aService is the server's A2A wiring: the relay of gateway/a2a
// (sessions, frames, groups) on the memory store, or on PostgreSQL when
// the server has a database.
type a2aService struct {
	store a2a.Store
	relay *a2a.Relay
	// now is the relay's clock (tests move it).
	now func() time.Time

	// A2A v1 (nil rpc: TALOS_A2A_EXECUTOR=none).
	tasks a2a.TaskStore
	rpc   *a2a.RPCHandler
	card  *a2a.SignedAgentCard
	push  *a2a.PushNotifier
}

// Audit and rate-limit surfaces of A2A v1 (gateway/a2a's names).
const (
	opA2AV1     = "a2a.v1.rpc"
	opA2ACompat = "a2a.compat.rpc"
	opA2APush   = a2a.PushDestinationOp
)

// a2aExecutors are the values of TALOS_A2A_EXECUTOR.
var a2aExecutors = []string{"echo", "llm", "none"}

func parseA2AExecutor(dst *string, v string) error {
	for _, e := range a2aExecutors {
		if v == e {
			*dst = v
			return nil
		}
	}
	return errors.New("must be one of " + strings.Join(a2aExecutors, ", "))
}

// addA2AAuditMeta admits the A2A v1 metadata (method, JSON-RPC id, push
// outcome) into the audit events of its surfaces.
func addA2AAuditMeta(allow map[string][]string) {
	base := []string{"decision_reason", "capability_hash", "tool", "action", "error_code", "budget_reservation", "budget_warned", "cost_micros"}
	for _, op := range []string{opA2AV1, opA2ACompat} {
		allow[op] = append(append([]string(nil), base...), "method", "id", "error")
	}
	allow[opA2APush] = append([]string(nil), a2a.PushAuditMeta...)
}

// newA2AService builds the A2A surface. The relay's routes run through
// the core's Kernel middleware (c.a2aRoutes, built by buildRoutes before
// mount), which verifies the attestation, rate-limits per principal
// (surface "a2a") and appends one audit event per request; the actor is
// the principal's registration.
func newA2AService(ctx context.Context, c *core, s *Server) (*a2aService, error) {
	a := &a2aService{now: time.Now}
	if s.db != nil {
		// The admin lists read the replica (readsplit.go); the relay the primary.
		ps, err := a2apg.NewStore(a2apg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix, Read: readSplit[a2apg.Querier](s.db)})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		a.store = ps
	} else {
		a.store = a2a.NewMemStore()
	}
	relay, err := a2a.NewRelay(a2a.RelayConfig{
		Store: a.store,
		Wrap:  func(h http.Handler) http.Handler { return c.a2aRoutes.Wrap(h) },
		Principal: func(r *http.Request) (string, bool) {
			p, ok := c.principalOf(r.Context())
			if !ok {
				return "", false
			}
			return p.DID, true
		},
		Now: func() time.Time { return a.now() },
	})
	if err != nil {
		return nil, err
	}
	a.relay = relay
	if s.cfg.A2AExecutor == "none" {
		return a, nil
	}
	return a, a.enableV1(ctx, c, s)
}

// enableV1 builds A2A v1: the task store (PostgreSQL with the server's
// database, memory otherwise), the executor of TALOS_A2A_EXECUTOR, push
// notifications attested with the server's key and audited per delivery,
// the signed agent card, and the JSON-RPC handler running every call
// through the core's Kernel. On a durable store it ends the tasks a
// previous process left running (Recover) before serving.
func (a *a2aService) enableV1(ctx context.Context, c *core, s *Server) error {
	a.tasks = a2a.NewMemTaskStore()
	var pushStore a2a.PushConfigStore = a2a.NewMemPushConfigStore()
	if s.db != nil {
		ts, err := a2apg.New(a2apg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix, Read: readSplit[a2apg.Querier](s.db)})
		if err != nil {
			return err
		}
		if err := ts.Migrate(ctx); err != nil {
			return err
		}
		a.tasks, pushStore = ts, ts
	}
	var exec a2a.Executor
	switch s.cfg.A2AExecutor {
	case "llm":
		if s.cfg.LLMUpstream == "" || s.cfg.A2ALLMModel == "" {
			return contracts.New(contracts.CodeInvalidInput, "config: TALOS_A2A_EXECUTOR=llm needs TALOS_LLM_UPSTREAM and TALOS_A2A_LLM_MODEL")
		}
		exec = &a2a.ChatCompletionsExecutor{BaseURL: s.cfg.LLMUpstream, Model: s.cfg.A2ALLMModel, APIKey: string(s.cfg.LLMAPIKey),
			Client: &http.Client{Timeout: s.cfg.LLMTimeout}}
	default:
		exec = &a2a.FuncExecutor{Agent: echoAgent}
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: s.wallet.Signer()})
	if err != nil {
		return err
	}
	a.push, err = a2a.NewPushNotifier(a2a.PushNotifierConfig{
		Signer: signer, Store: pushStore,
		AllowLoopback: s.cfg.A2APushAllowPrivate, AllowPrivate: s.cfg.A2APushAllowPrivate, AllowHTTP: s.cfg.A2APushAllowPrivate,
		OnDelivery: a2a.AuditDeliveries(a2a.DeliveryAudit{Log: c.log, Events: c.events, Server: s.wallet.DID(), OnError: func(err error) {
			s.log.Warn("a2a: push delivery audit event not appended", "err", err)
		}}),
	})
	if err != nil {
		return err
	}
	card := a2a.AgentCard{
		Name: "Talos example server", Description: "A2A v1 on Talos: attested JSON-RPC, capability scopes, audited calls.",
		Version: talos.Version, Organization: "Talos", DocumentationURL: "https://github.com/talosgo/talos#a2a",
		RPCURL: "http://" + s.cfg.Listen + "/rpc", Streaming: true, PushNotifications: true,
		Skills: []a2a.AgentSkill{{ID: "echo", Name: "Echo", Description: "Answers the text of the message (TALOS_A2A_EXECUTOR selects the agent)."}},
	}
	if a.card, err = card.Sign(s.wallet.Signer()); err != nil {
		return err
	}
	v1card, err := card.V1()
	if err != nil {
		return err
	}
	a.rpc, err = a2a.NewRPCHandler(a2a.RPCHandlerConfig{
		Kernel: c.kernel, Authorizer: c.admin.Policy().Authorizer(c.verifier),
		Tasks: a.tasks, Executor: exec, Push: a.push, ExtendedCard: v1card,
		// A task (its executor's work) is charged to the caller's key and
		// team budgets; reads, cancels and push settings are not.
		Budget: func(r *http.Request, method string) *budget.ReserveRequest {
			if method != "SendMessage" && method != "SendStreamingMessage" {
				return nil
			}
			p, ok := c.principalOf(r.Context())
			if !ok {
				return nil
			}
			return c.budgets.request(p, s.cfg.A2ATaskCost, "") // the usage_event surface enum has no a2a
		},
		Team: func(r *http.Request) string {
			if p, ok := c.principalOf(r.Context()); ok {
				return p.TeamID
			}
			return ""
		},
	})
	if err != nil {
		return err
	}
	if s.db != nil {
		n, err := a.rpc.Recover(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Info("a2a: ended tasks interrupted by a restart", "tasks", n)
		}
	}
	s.OnShutdown("a2a-push", func(context.Context) error { a.push.Wait(); return nil })
	return nil
}

// echoAgent is the default executor: it answers the message's text as
// the task's artifact.
func echoAgent(_ context.Context, t *a2a.Task, _ a2a.Updater) ([]a2a.Artifact, error) {
	var parts []a2a.Part
	if len(t.History) > 0 {
		for _, p := range t.History[0].Parts {
			if p.Text != "" {
				parts = append(parts, a2a.Part{Text: p.Text})
			}
		}
	}
	if len(parts) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: the echo agent needs a text part")
	}
	return []a2a.Artifact{{ArtifactID: "echo", Name: "echo", Parts: parts}}, nil
}

// a2aAttestedRoutes are the A2A routes of the server's route table.
func a2aAttestedRoutes() []talos.Route {
	return append(a2a.RelayTalosRoutes(), a2a.Routes()...)
}

// mountA2A serves the A2A routes: the relay, and A2A v1 (JSON-RPC at
// POST /rpc and /a2a/v1/rpc, the compat dispatcher at POST /a2a/v1/,
// behind the core's Attester; the public signed agent card).
func (c *core) mountA2A(mux *http.ServeMux, a *a2aService) {
	a.relay.Mount(mux)
	if a.rpc == nil {
		return
	}
	mux.Handle("POST /rpc", c.attester.Wrap(a.rpc))
	mux.Handle("POST /a2a/v1/rpc", c.attester.Wrap(a.rpc))
	mux.Handle("POST /a2a/v1/{$}", c.attester.Wrap(a.rpc.Compat()))
	card := a2a.CardHandler(a.card)
	mux.Handle("GET /.well-known/agent-card.json", card)
	mux.Handle("GET /.well-known/agent.json", card)
}

// encodeFrameCursor is the relay's frame list cursor of position pos.
func encodeFrameCursor(pos uint64) string { return a2a.EncodeFrameCursor(pos) }
