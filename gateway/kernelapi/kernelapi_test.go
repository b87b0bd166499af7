package kernelapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/gateway/kernelapi"
	"github.com/talosgo/talos/identity"
)

const origin = "test/audit"

// gateway is a whole small gateway: admin API, Kernel (capability verifier
// behind the RBAC policy, memory rate limits, audit log) and kernel API.
type gateway struct {
	wallet *identity.Wallet
	admin  *admin.Handler
	owner  *identity.Wallet // an owner admin identity: signs adminCall's requests
	log    *audit.Log
	mux    *http.ServeMux
}

func newGateway(ctx context.Context, dir string, rate budget.Limit) (*gateway, error) {
	g := &gateway{mux: http.NewServeMux()}
	var err error
	if g.wallet, err = identity.GenerateWallet("gateway"); err != nil {
		return nil, err
	}
	signer, err := audit.NewNoteSigner(origin, g.wallet.Signer())
	if err != nil {
		return nil, err
	}
	verifier, err := audit.NewVerifier(origin, g.wallet.PublicKey())
	if err != nil {
		return nil, err
	}
	if g.log, err = audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier}); err != nil {
		return nil, err
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{
		kernelapi.Opcode: {"decision_reason", "capability_hash", "tool", "action"},
	}})
	if err != nil {
		return nil, err
	}
	spend, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		return nil, err
	}
	store, err := admin.OpenFile(filepath.Join(dir, "admin.json"))
	if err != nil {
		return nil, err
	}
	revocations := capability.NewMemRevocationStore(nil)
	nonces := identity.NewMemNonceStore(1 << 20)
	g.admin, err = admin.New(ctx, admin.Config{
		Issuer: g.wallet, Store: store, Revocations: revocations, Budget: spend, Audit: g.log, Events: events,
		Nonces: nonces,
	})
	if err != nil {
		return nil, err
	}
	if g.owner, err = identity.GenerateWallet("owner"); err != nil {
		return nil, err
	}
	if _, err := g.admin.PutIdentity(ctx, g.owner.DID().String(), admin.RoleOwner, "test"); err != nil {
		return nil, err
	}
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{g.wallet.DID()}, Revocations: revocations, Replay: nonces, Audience: g.wallet.DID().String(),
	})
	if err != nil {
		return nil, err
	}
	limits, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: kernelapi.Opcode, Limit: rate},
		map[string]budget.Limit{kernelapi.Opcode: rate})
	if err != nil {
		return nil, err
	}
	kernel, err := talos.NewKernel(talos.KernelConfig{
		Authorizer: g.admin.Policy().Authorizer(v), Limits: limits, Budget: spend, Audit: g.log, Events: events,
	})
	if err != nil {
		return nil, err
	}
	routes, err := talos.NewRouteTable([]talos.Route{kernelapi.Route})
	if err != nil {
		return nil, err
	}
	attester, err := talos.NewAttester(talos.AttesterConfig{
		Routes: routes, Attestation: identity.AttestationVerifierConfig{Keys: g.admin.Principals(), Nonces: nonces},
	})
	if err != nil {
		return nil, err
	}
	api, err := kernelapi.New(kernelapi.Config{
		Kernel: kernel, Attester: attester, Principals: g.admin.Principals(),
		DID: g.wallet.DID(), AuditOrigin: origin, AuditKey: g.wallet.PublicKey(), Opcodes: routes.Opcodes,
	})
	if err != nil {
		return nil, err
	}
	g.admin.Register(g.mux)
	api.Register(g.mux)
	return g, nil
}

// call serves one request on the gateway's mux and decodes the answer.
func (g *gateway) call(t testing.TB, req *http.Request, v any) int {
	t.Helper()
	w := httptest.NewRecorder()
	g.mux.ServeHTTP(w, req)
	if v != nil {
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("%s %s: %d %q", req.Method, req.URL.Path, w.Code, w.Body.Bytes())
		}
	}
	return w.Code
}

func (g *gateway) adminCall(t testing.TB, method, path, body string, v any) int {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := admintest.SignerFor(t, g.owner, admin.RoleOwner).Sign(req); err != nil {
		t.Fatal(err)
	}
	return g.call(t, req, v)
}

// authorize makes an attested POST /v1/authorize signed by w.
func (g *gateway) authorize(t testing.TB, w *identity.Wallet, body string, v any) int {
	t.Helper()
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/v1/authorize", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, kernelapi.Opcode); err != nil {
		t.Fatal(err)
	}
	return g.call(t, req, v)
}

func setup(t *testing.T, rate budget.Limit) (*gateway, *identity.Wallet, string) {
	t.Helper()
	g, err := newGateway(t.Context(), t.TempDir(), rate)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := identity.GenerateWallet("alice")
	if st := g.adminCall(t, "PUT", "/v1/principals/"+alice.DID().String(), `{"team_id":"team-a"}`, nil); st != 200 {
		t.Fatal(st)
	}
	var tok admin.TokenResponse
	body := `{"subject":"` + alice.DID().String() + `","grants":[{"tool":"files","actions":["read"]}],"expires_in_seconds":600}`
	if st := g.adminCall(t, "POST", "/v1/capabilities", body, &tok); st != http.StatusCreated {
		t.Fatal(st)
	}
	return g, alice, tok.Token
}

func TestAuthorize(t *testing.T) {
	g, alice, tok := setup(t, budget.PerSecond(1000))
	var d kernelapi.Decision
	if st := g.authorize(t, alice, `{"capability":"`+tok+`","tool":"files","action":"read"}`, &d); st != 200 ||
		!d.Allowed || d.Reason != "ALLOWED" || d.Grant == nil || d.Principal != alice.DID().String() || d.EventHash == "" {
		t.Fatalf("allowed: %d %+v", st, d)
	}
	// The decision is in the audit log at the index the answer names.
	cp, err := g.log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.log.InclusionProof(t.Context(), d.AuditIndex, cp.Size); err != nil || d.AuditIndex >= cp.Size {
		t.Fatalf("audit index %d of %d: %v", d.AuditIndex, cp.Size, err)
	}
	// A denial is an answer, with its code and no grant.
	d = kernelapi.Decision{}
	if st := g.authorize(t, alice, `{"capability":"`+tok+`","tool":"files","action":"write"}`, &d); st != 200 ||
		d.Allowed || d.Code != string(contracts.CodeDenied) || d.Grant != nil {
		t.Fatalf("denied: %d %+v", st, d)
	}
	// Another registered key presenting alice's token is refused.
	bob, _ := identity.GenerateWallet("bob")
	if st := g.adminCall(t, "PUT", "/v1/principals/"+bob.DID().String(), `{"team_id":"team-b"}`, nil); st != 200 {
		t.Fatal(st)
	}
	d = kernelapi.Decision{}
	if st := g.authorize(t, bob, `{"capability":"`+tok+`","tool":"files","action":"read"}`, &d); st != 200 || d.Allowed {
		t.Fatalf("holder binding: %d %+v", st, d)
	}
	// An unregistered key is not authenticated; a strict body is required.
	var eb struct{ Code string }
	stranger, _ := identity.GenerateWallet("stranger")
	if st := g.authorize(t, stranger, `{"capability":"`+tok+`","tool":"files","action":"read"}`, &eb); st != 401 || eb.Code != string(contracts.CodeAuthInvalid) {
		t.Fatalf("unregistered: %d %+v", st, eb)
	}
	for _, bad := range []string{
		`{"capability":"x","tool":"files","action":"read","Tool":"y"}`,
		`{"capability":"x","tool":"files","action":"read","extra":1}`,
		`{"capability":null,"tool":"files","action":"read"}`,
	} {
		size, _ := g.log.Size(t.Context())
		if st := g.authorize(t, alice, bad, &eb); st != 400 || eb.Code != string(contracts.CodeInvalidInput) {
			t.Errorf("%s: %d %+v", bad, st, eb)
		}
		if after, _ := g.log.Size(t.Context()); after != size {
			t.Errorf("%s reached the Kernel", bad)
		}
	}
}

func TestAuthorizeRateLimited(t *testing.T) {
	g, alice, tok := setup(t, budget.PerMinute(2))
	body := `{"capability":"` + tok + `","tool":"files","action":"read"}`
	for range 2 {
		if st := g.authorize(t, alice, body, nil); st != 200 {
			t.Fatal(st)
		}
	}
	var eb struct {
		Code      string
		Retryable bool
	}
	if st := g.authorize(t, alice, body, &eb); st != 429 || eb.Code != string(contracts.CodeRateLimited) || !eb.Retryable {
		t.Fatalf("over the rate: %d %+v", st, eb)
	}
}

func TestIdentity(t *testing.T) {
	g, alice, tok := setup(t, budget.PerSecond(1000))
	var id struct {
		DID    string            `json:"did"`
		Origin string            `json:"audit_origin"`
		VKey   string            `json:"audit_verifier_key"`
		Routes map[string]string `json:"attested_routes"`
	}
	if st := g.call(t, httptest.NewRequest("GET", "/v1/identity", nil), &id); st != 200 ||
		id.DID != g.wallet.DID().String() || id.Origin != origin || id.Routes["POST /v1/authorize"] != kernelapi.Opcode {
		t.Fatalf("identity: %d %+v", st, id)
	}
	// The published key verifies the log's checkpoints.
	if st := g.authorize(t, alice, `{"capability":"`+tok+`","tool":"files","action":"read"}`, nil); st != 200 {
		t.Fatal(st)
	}
	cp, err := g.log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyCheckpoint(cp.Note, id.VKey); err != nil {
		t.Fatalf("checkpoint under the published key: %v", err)
	}
}

func TestNewRequiresEveryField(t *testing.T) {
	if _, err := kernelapi.New(kernelapi.Config{}); err == nil {
		t.Fatal("New accepted an empty Config")
	}
}
