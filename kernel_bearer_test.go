package talos_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// bearerEvents is an event builder admitting the fixture's keys and
// oauth_issuer, but not oauth_secret.
func bearerEvents(t testing.TB) func(*talos.KernelConfig) {
	ev, err := audit.NewEventBuilder(audit.BuilderConfig{
		MetaAllowlist: map[string][]string{"tool.call": {"decision_reason", "capability_hash", "tool", "action", "error_code", "budget_reservation", "cost_micros", "oauth_issuer", "via"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *talos.KernelConfig) { c.Events = ev }
}

// lastEvent parses (and so checks against the contract) the last event of
// the fixture's log.
func (f *kernelFixture) lastEvent(t *testing.T) *audit.Event {
	t.Helper()
	ctx := context.Background()
	n, err := f.log.Size(ctx)
	if err != nil || n == 0 {
		t.Fatalf("log size %d, %v", n, err)
	}
	raw, err := f.log.Entry(ctx, n-1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := audit.ParseEvent(raw)
	if err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	return ev
}

// TestKernelAuditBearerAuth: a call under WithBearerAuth is audited with
// auth_mode "bearer" (no signer_key_id) and the given meta (allowlisted,
// below Call.Meta and the Kernel's own members); allowed and denied alike;
// without it the same call is "signed"; the Kernel middleware records it
// for a request whose context carries it; an anonymous call stays
// anonymous.
func TestKernelAuditBearerAuth(t *testing.T) {
	f := newKernelFixture(t, budget.PerMinute(100), bearerEvents(t))
	ok := func(context.Context, capability.Decision) (int64, int, error) { return 1, http.StatusOK, nil }
	bearer := talos.WithBearerAuth(context.Background(), map[string]any{
		"oauth_issuer":    "https://as.talos.test",
		"oauth_secret":    "not allowlisted",
		"decision_reason": "FORGED", // the Kernel's member wins
		"via":             "bearer-meta",
	})

	call := f.call("search", 10)
	call.Team = "t1"
	call.Meta = map[string]any{"via": "call-meta"} // Call.Meta wins
	if out, err := f.kernel.Do(bearer, call, ok); err != nil || !out.Allowed {
		t.Fatalf("bearer call: %+v %v", out, err)
	}
	ev := f.lastEvent(t)
	want := audit.BearerPrincipal(f.agent.DID().String(), "t1")
	if ev.Principal != want {
		t.Fatalf("bearer principal %+v, want %+v", ev.Principal, want)
	}
	if ev.Meta["oauth_issuer"] != "https://as.talos.test" || ev.Meta["decision_reason"] != "ALLOWED" || ev.Meta["via"] != "call-meta" {
		t.Fatalf("bearer meta %v", ev.Meta)
	}
	if _, leaked := ev.Meta["oauth_secret"]; leaked {
		t.Fatalf("a member outside the allowlist was recorded: %v", ev.Meta)
	}

	// Denied under the same context: still bearer.
	if out, err := f.kernel.Do(bearer, f.call("shell", 1), ok); err != nil || out.Allowed {
		t.Fatalf("denied bearer call: %+v %v", out, err)
	}
	if ev := f.lastEvent(t); ev.Principal.AuthMode != audit.AuthBearer || ev.Principal.SignerKeyID != "" || ev.Outcome != audit.OutcomeDenied {
		t.Fatalf("denied bearer call audited as %+v %s", ev.Principal, ev.Outcome)
	}

	// The same call without it: signed by the principal's DID, no bearer meta.
	if _, err := f.kernel.Do(context.Background(), f.call("search", 10), ok); err != nil {
		t.Fatal(err)
	}
	ev = f.lastEvent(t)
	if want := audit.SignedPrincipal(f.agent.DID().String(), "default", f.agent.DID().String()); ev.Principal != want {
		t.Fatalf("signed principal %+v, want %+v", ev.Principal, want)
	}
	if _, ok := ev.Meta["oauth_issuer"]; ok {
		t.Fatalf("bearer meta on a signed call: %v", ev.Meta)
	}

	// No principal: anonymous, whatever the context says.
	anon := talos.Call{SurfaceID: "tool.call", TemplatePath: "/v1/tools/{tool}", Decision: &capability.Decision{Reason: capability.ReasonUnknownTool}}
	if _, err := f.kernel.Do(bearer, anon, ok); err != nil {
		t.Fatal(err)
	}
	if ev := f.lastEvent(t); ev.Principal != audit.AnonymousPrincipal() {
		t.Fatalf("anonymous call audited as %+v", ev.Principal)
	}

	// Through the Kernel middleware: the request's context decides.
	routes := mustRoutes(t, talos.Route{Pattern: "POST /search/{index}", Tool: "search", Action: "query", Opcode: "tool.call"})
	mw, err := f.kernel.Middleware(talos.KernelMiddlewareConfig{Attester: newAttester(t, routes, talos.Deny)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("found")) }))
	signer := signerFor(t, f.agent)
	for _, withBearer := range []bool{true, false} {
		r := httptest.NewRequest("POST", "/search/docs", strings.NewReader(`{"q":"x"}`))
		r.Header.Set(talos.HeaderCapability, f.token)
		if err := signer.Sign(r, "tool.call"); err != nil {
			t.Fatal(err)
		}
		if withBearer {
			r = r.WithContext(talos.WithBearerAuth(r.Context(), map[string]any{"oauth_issuer": "https://as.talos.test"}))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("middleware (bearer %v): %d %s", withBearer, w.Code, w.Body)
		}
		ev := f.lastEvent(t)
		if got := ev.Principal.AuthMode == audit.AuthBearer && ev.Meta["oauth_issuer"] == "https://as.talos.test"; got != withBearer {
			t.Fatalf("middleware (bearer %v): %+v %v", withBearer, ev.Principal, ev.Meta)
		}
	}
}

// TestKernelWithBearerAuthCopiesMeta: changing the map after
// WithBearerAuth changes nothing recorded.
func TestKernelWithBearerAuthCopiesMeta(t *testing.T) {
	f := newKernelFixture(t, budget.PerMinute(100), bearerEvents(t))
	meta := map[string]any{"oauth_issuer": "https://as.talos.test"}
	ctx := talos.WithBearerAuth(context.Background(), meta)
	meta["oauth_issuer"] = "https://changed.talos.test"
	if _, err := f.kernel.Do(ctx, f.call("search", 1), func(context.Context, capability.Decision) (int64, int, error) { return 0, 200, nil }); err != nil {
		t.Fatal(err)
	}
	if ev := f.lastEvent(t); ev.Meta["oauth_issuer"] != "https://as.talos.test" {
		t.Fatalf("meta %v", ev.Meta)
	}
}

// ExampleWithBearerAuth: a server that verified an OAuth access token
// itself serves the call as the token's principal; the audit event says
// the caller presented a bearer credential, and which issuer vouched for
// it, instead of claiming a request signature.
func ExampleWithBearerAuth() {
	ctx := context.Background()
	issuer, _ := identity.GenerateWallet("issuer")
	agent, _ := identity.GenerateWallet("agent")
	logKey, _ := identity.GenerateWallet("log")
	authz, _ := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()},
		Revocations:    capability.NewMemRevocationStore(nil),
	})
	defer authz.Close()
	signer, _ := audit.NewNoteSigner("example/log", logKey.Signer())
	verifier, _ := audit.NewVerifier("example/log", logKey.PublicKey())
	auditLog, _ := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{
		MetaAllowlist: map[string][]string{"search.query": {"decision_reason", "oauth_issuer"}},
	})
	kernel, err := talos.NewKernel(talos.KernelConfig{Authorizer: authz, Audit: auditLog, Events: events})
	if err != nil {
		log.Fatal(err)
	}
	tok, _ := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "search", Actions: []string{"query"}}}, time.Now().Add(time.Hour), nil)

	// After verifying "Authorization: Bearer …" (not shown):
	ctx = talos.WithBearerAuth(ctx, map[string]any{"oauth_issuer": "https://as.example.com"})
	_, err = kernel.Do(ctx, talos.Call{
		Request:   capability.Request{Capability: tok.Encode(), Principal: agent.DID(), Tool: "search", Action: "query"},
		SurfaceID: "search.query", TemplatePath: "/search", Team: "research",
	}, func(context.Context, capability.Decision) (int64, int, error) { return 0, http.StatusOK, nil })
	if err != nil {
		log.Fatal(err)
	}
	raw, _ := auditLog.Entry(ctx, 0)
	ev, _ := audit.ParseEvent(raw)
	fmt.Println(ev.Principal.AuthMode, ev.Principal.TeamID, ev.Principal.SignerKeyID == "", ev.Meta["oauth_issuer"])
	// Output:
	// bearer research true https://as.example.com
}
