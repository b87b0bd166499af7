package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/identity"
)

// Example builds the admin API over a file store and the in-memory
// back-ends, registers an agent and reads the registration back.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "admin")
	defer os.RemoveAll(dir)
	issuer, _ := identity.GenerateWallet("gateway")
	store, _ := admin.OpenFile(filepath.Join(dir, "admin.json"))
	signer, _ := audit.NewNoteSigner("example/audit", issuer.Signer())
	verifier, _ := audit.NewVerifier("example/audit", issuer.PublicKey())
	log, _ := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	spend, _ := budget.NewMemBudget(budget.MemBudgetConfig{})

	h, err := admin.New(ctx, admin.Config{
		Issuer: issuer, Store: store, Revocations: capability.NewMemRevocationStore(nil),
		Budget: spend, Audit: log, Events: events, Nonces: identity.NewMemNonceStore(1 << 10),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	h.Register(mux)

	// The first owner (a server makes it with POST /v1/admin/bootstrap).
	owner, _ := identity.GenerateWallet("owner")
	if _, err := h.PutIdentity(ctx, owner.DID().String(), admin.RoleOwner, "example"); err != nil {
		fmt.Println(err)
		return
	}
	sign, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: owner.Signer()})

	agent, _ := identity.GenerateWallet("agent")
	req := httptest.NewRequest("PUT", "/v1/principals/"+agent.DID().String(), strings.NewReader(`{"team_id":"research"}`))
	req.Header.Set("Content-Type", "application/json")
	if err := sign.Sign(req, admin.SurfaceID); err != nil {
		fmt.Println(err)
		return
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	fmt.Println("register:", w.Code)

	p, _ := h.Principals().Lookup(ctx, agent.DID().String())
	fmt.Println("team:", p.TeamID)
	n, _ := log.Size(ctx)
	fmt.Println("audit events:", n)
	// Output:
	// register: 200
	// team: research
	// audit events: 1
}

// ExampleHandler_Require puts a gateway's own admin route behind the
// admin.audit read grant: an auditor's session may call it, a viewer's
// gets 403 RBAC_DENIED, and a request without an admin credential 401.
func ExampleHandler_Require() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "admin")
	defer os.RemoveAll(dir)
	issuer, _ := identity.GenerateWallet("gateway")
	store, _ := admin.OpenFile(filepath.Join(dir, "admin.json"))
	signer, _ := audit.NewNoteSigner("example/audit", issuer.Signer())
	verifier, _ := audit.NewVerifier("example/audit", issuer.PublicKey())
	log, _ := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	spend, _ := budget.NewMemBudget(budget.MemBudgetConfig{})
	h, _ := admin.New(ctx, admin.Config{
		Issuer: issuer, Store: store, Revocations: capability.NewMemRevocationStore(nil),
		Budget: spend, Audit: log, Events: events, Nonces: identity.NewMemNonceStore(1 << 10),
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /report", h.Require(admin.ToolAudit, admin.ActionRead, func(w http.ResponseWriter, r *http.Request) {
		a, _ := admin.ActorFrom(r.Context())
		fmt.Fprintln(w, "report for", a.Role)
	}))
	session := func(role string) string {
		w, _ := identity.GenerateWallet(role)
		h.PutIdentity(ctx, w.DID().String(), role, "example")
		s, _ := h.IssueSession(ctx, w.DID().String(), role, admin.DefaultSessionTTL)
		return s.Token
	}
	for _, tok := range []string{session(admin.RoleAuditor), session(admin.RoleViewer), ""} {
		req := httptest.NewRequest("GET", "/report", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		fmt.Println(w.Code)
	}
	// Output:
	// 200
	// 403
	// 401
}
