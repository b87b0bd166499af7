package talos_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

type kernelFixture struct {
	kernel *talos.Kernel
	log    *audit.Log
	budget *budget.MemBudget
	issuer *identity.Wallet
	agent  *identity.Wallet
	token  string
}

func newKernelFixture(t *testing.T, rate budget.Limit, opts ...func(*talos.KernelConfig)) *kernelFixture {
	t.Helper()
	ctx := context.Background()
	issuer, err := identity.GenerateWallet("issuer")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := identity.GenerateWallet("agent")
	if err != nil {
		t.Fatal(err)
	}
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "search", Actions: []string{"query"}}}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := identity.GenerateWallet("log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewNoteSigner("talos.test/log", logKey.Signer())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier("talos.test/log", logKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{
		MetaAllowlist: map[string][]string{"tool.call": {"decision_reason", "capability_hash", "tool", "action", "error_code", "budget_reservation", "cost_micros"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	limits, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: "tool.call", Limit: rate},
		map[string]budget.Limit{"tool.call": rate})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := talos.KernelConfig{Authorizer: v, Limits: limits, Budget: mem, Audit: log, Events: events}
	for _, o := range opts {
		o(&cfg)
	}
	k, err := talos.NewKernel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &kernelFixture{kernel: k, log: log, budget: mem, issuer: issuer, agent: agent, token: tok.Encode()}
}

func (f *kernelFixture) call(tool string, amount int64) talos.Call {
	return talos.Call{
		Request:      capability.Request{Capability: f.token, Principal: f.agent.DID(), Tool: tool, Action: "query"},
		SurfaceID:    "tool.call",
		TemplatePath: "/v1/tools/{tool}",
		HTTP:         &http.Request{Method: http.MethodPost, Header: http.Header{}, RemoteAddr: "192.0.2.1:1234"},
		Budget: &budget.ReserveRequest{
			Scopes: []budget.Scope{{ID: "agent:a1", Limit: 1000}, {ID: "team:t1", Limit: 5000}},
			Amount: amount,
		},
	}
}

// TestKernelPipeline runs allowed and denied calls through every stage and
// checks that each outcome is audited with its decision, and that the audit
// events are provably included under a signed checkpoint.
func TestKernelPipeline(t *testing.T) {
	ctx := context.Background()
	f := newKernelFixture(t, budget.PerMinute(2))
	ran := 0
	handler := func(ctx context.Context, d capability.Decision) (int64, int, error) {
		ran++
		if !d.Allowed || d.Tool != "search" {
			t.Errorf("handler saw decision %+v", d)
		}
		return 400, http.StatusOK, nil
	}

	// 1. Allowed: reserves 600, charges 400.
	out, err := f.kernel.Do(ctx, f.call("search", 600), handler)
	if err != nil || !out.Allowed || out.Code != "" || out.Settlement.Actual != 400 {
		t.Fatalf("allowed call: %+v, %v", out, err)
	}
	// 2. Not granted: denied before the handler, nothing reserved.
	out, err = f.kernel.Do(ctx, f.call("shell", 1), handler)
	if err != nil || out.Allowed || out.Decision.Reason != capability.ReasonScopeMismatch || out.Status != http.StatusForbidden {
		t.Fatalf("scope mismatch: %+v, %v", out, err)
	}
	// 3. Over budget: 400 spent of 1000, 700 more does not fit.
	out, err = f.kernel.Do(ctx, f.call("search", 700), handler)
	if err != nil || out.Allowed || out.Code != contracts.CodeBudgetExceeded || out.Status != http.StatusTooManyRequests {
		t.Fatalf("over budget: %+v, %v", out, err)
	}
	// 4. Rate limited: the limiter (2 a minute) admitted calls 1 and 3 (a
	// call denied at the budget still counts); call 2 never reached it.
	out, err = f.kernel.Do(ctx, f.call("search", 1), handler)
	if err != nil || out.Allowed || out.Code != contracts.CodeRateLimited {
		t.Fatalf("rate limited: %+v, %v", out, err)
	}
	if ran != 1 {
		t.Fatalf("handler ran %d times, want 1", ran)
	}
	u, err := f.budget.Usage(ctx, "team:t1", budget.Scope{ID: "agent:a1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if u.Spent != 400 || u.Reserved != 0 {
		t.Fatalf("usage %+v, want spent 400 and nothing reserved", u)
	}

	// Every call is in the log, provably.
	cp, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 4 {
		t.Fatalf("audit log has %d events, want 4", cp.Size)
	}
	wantReasons := []string{"ALLOWED", "SCOPE_MISMATCH", "ALLOWED", "ALLOWED"}
	wantCodes := []string{"", string(contracts.CodeDenied), string(contracts.CodeBudgetExceeded), string(contracts.CodeRateLimited)}
	for i := uint64(0); i < cp.Size; i++ {
		entry, err := f.log.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := f.log.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyInclusion(proof, cp, i, audit.LeafHash(entry)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var ev struct {
			Meta map[string]any `json:"meta"`
		}
		if err := json.Unmarshal(entry, &ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Meta["decision_reason"] != wantReasons[i] {
			t.Errorf("event %d: reason %v, want %s", i, ev.Meta["decision_reason"], wantReasons[i])
		}
		if code, _ := ev.Meta["error_code"].(string); code != wantCodes[i] {
			t.Errorf("event %d: error_code %q, want %q", i, code, wantCodes[i])
		}
		// The settled call records its reservation and actual cost.
		if res, _ := ev.Meta["budget_reservation"].(string); (i == 0) != (res != "") || (i == 0) != (ev.Meta["cost_micros"] == float64(400)) {
			t.Errorf("event %d: budget meta %v", i, ev.Meta)
		}
	}
}

// TestKernelHandlerFailureReleases checks that a failed handler frees its
// reservation and that the failure is audited.
func TestKernelHandlerFailureReleases(t *testing.T) {
	ctx := context.Background()
	f := newKernelFixture(t, budget.PerMinute(100))
	boom := contracts.New(contracts.CodeUpstream5xx, "upstream failed")
	out, err := f.kernel.Do(ctx, f.call("search", 900), func(context.Context, capability.Decision) (int64, int, error) {
		return 0, 0, boom
	})
	if !errors.Is(err, boom) || out.Code != contracts.CodeUpstream5xx || out.Status != http.StatusBadGateway {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	u, err := f.budget.Usage(ctx, "team:t1", budget.Scope{ID: "agent:a1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if u.Spent != 0 || u.Reserved != 0 {
		t.Fatalf("usage after failure %+v, want nothing held", u)
	}
	if n, _ := f.log.Size(ctx); n != 1 {
		t.Fatalf("audit size %d, want 1", n)
	}
}

// TestKernelMiddleware runs attested HTTP requests through
// Kernel.Middleware: one decision and one audit event per request, limits
// and budgets applied once, AttestOnly routes limited and audited without
// a capability, and the handler's status and cost recorded.
func TestKernelMiddleware(t *testing.T) {
	ctx := context.Background()
	f := newKernelFixture(t, budget.PerMinute(4))
	routes := mustRoutes(t,
		talos.Route{Pattern: "POST /search/{index}", Tool: "search", Action: "query", Opcode: "tool.call"},
		talos.Route{Pattern: "POST /rooms/{id}/say", Opcode: "tool.call", AttestOnly: true},
	)
	mw, err := f.kernel.Middleware(talos.KernelMiddlewareConfig{
		Attester: newAttester(t, routes, talos.Deny),
		Prepare: func(r *http.Request, call *talos.Call) {
			if _, ok := talos.RouteFrom(r.Context()); !ok {
				t.Error("Prepare without the route")
			}
			call.Team = "t1"
			if call.Decision == nil { // the capability route is budgeted
				call.Budget = &budget.ReserveRequest{Scopes: []budget.Scope{{ID: "agent:a1", Limit: 1000}}, Amount: 300}
			}
		},
		OnError: func(r *http.Request, out talos.Outcome, err error) { t.Errorf("OnError: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var ranSearch, ranSay int
	mux := http.NewServeMux()
	mux.HandleFunc("POST /search/{index}", func(w http.ResponseWriter, r *http.Request) {
		ranSearch++
		d, ok := talos.DecisionFrom(r.Context())
		if !ok || !d.Allowed || d.Tool != "search" {
			t.Errorf("search: decision %+v", d)
		}
		if r.PathValue("index") == "fail" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		talos.SetCost(r.Context(), 100)
		talos.SetAuditMeta(r.Context(), "action", "overridden") // the Kernel's own members win
		w.Write([]byte("found"))
	})
	mux.HandleFunc("POST /rooms/{id}/say", func(w http.ResponseWriter, r *http.Request) {
		ranSay++
		d, _ := talos.DecisionFrom(r.Context())
		p, _ := talos.PrincipalFrom(r.Context())
		if d.Reason != talos.ReasonAttested || p != f.agent.DID() {
			t.Errorf("say: decision %+v principal %v", d, p)
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h := mw.Wrap(mux)
	signer := signerFor(t, f.agent)
	send := func(target, opcode, capHeader string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", target, strings.NewReader(`{"q":"x"}`))
		if capHeader != "" {
			r.Header.Set(talos.HeaderCapability, capHeader)
		}
		if opcode != "" {
			if err := signer.Sign(r, opcode); err != nil {
				t.Fatal(err)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// Unattested and unmatched requests are answered without an audit event.
	if w := send("/search/docs", "", f.token); w.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", w.Code)
	}
	if w := send("/nowhere", "tool.call", f.token); w.Code != http.StatusNotFound {
		t.Fatalf("unmatched: %d", w.Code)
	}
	if n, _ := f.log.Size(ctx); n != 0 {
		t.Fatalf("%d audit events for unattested requests", n)
	}
	steps := []struct {
		target, capHeader string
		status            int
		reason, code      string
	}{
		{"/search/docs", f.token, 200, "ALLOWED", ""},                                       // reserves 300, charges 100
		{"/search/docs", "", 403, "NO_CAPABILITY", string(contracts.CodeInvalidCapability)}, // not limited: denied first
		{"/rooms/r1/say", "", 202, "ATTESTED", ""},                                          // no capability needed
		{"/search/fail", f.token, 502, "ALLOWED", string(contracts.CodeInternal)},           // released
		{"/search/docs", f.token, 200, "ALLOWED", ""},                                       // 4th call the limiter admits
		{"/rooms/r1/say", "", 429, "ATTESTED", string(contracts.CodeRateLimited)},           // the 5th is limited
	}
	for i, s := range steps {
		w := send(s.target, "tool.call", s.capHeader)
		if w.Code != s.status {
			t.Fatalf("step %d %s: %d %s, want %d", i, s.target, w.Code, w.Body, s.status)
		}
		if s.code == string(contracts.CodeRateLimited) && w.Header().Get("Retry-After") == "" {
			t.Errorf("step %d: no Retry-After", i)
		}
	}
	if ranSearch != 3 || ranSay != 1 {
		t.Fatalf("handlers ran %d and %d times", ranSearch, ranSay)
	}
	u, err := f.budget.Usage(ctx, "agent:a1", budget.Scope{ID: "agent:a1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if u.Spent != 200 || u.Reserved != 0 {
		t.Fatalf("usage %+v, want 200 spent (two calls at 100) and nothing held", u)
	}
	n, _ := f.log.Size(ctx)
	if n != uint64(len(steps)) {
		t.Fatalf("%d audit events for %d requests", n, len(steps))
	}
	for i, s := range steps {
		entry, err := f.log.Entry(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Meta map[string]any `json:"meta"`
		}
		if err := json.Unmarshal(entry, &ev); err != nil {
			t.Fatal(err)
		}
		code, _ := ev.Meta["error_code"].(string)
		if ev.Meta["decision_reason"] != s.reason || code != s.code {
			t.Errorf("event %d: %v, want reason %s code %q", i, ev.Meta, s.reason, s.code)
		}
		if i == 0 && (ev.Meta["cost_micros"] != float64(100) || ev.Meta["action"] != "query") {
			t.Errorf("event 0 meta %v", ev.Meta)
		}
	}
}
