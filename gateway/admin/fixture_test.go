package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"
)

// fixture is a gateway built from real components: a file store, the
// memory revocation and budget back-ends, an audit log, a capability
// verifier behind the admin RBAC policy and an Attester resolving keys
// through the principal registry.
type fixture struct {
	t        *testing.T
	issuer   *identity.Wallet
	store    admin.Store
	revoked  *capability.MemRevocationStore
	log      *audit.Log
	admin    *admin.Handler
	authz    capability.Authorizer
	srv      *httptest.Server
	attester *talos.Attester
	owner    *admintest.Admin // the owner identity
	session  string           // an owner session: f.do's admin credential
}

func newFixture(t *testing.T, store admin.Store, now func() time.Time) *fixture {
	t.Helper()
	issuer, err := identity.GenerateWallet("issuer")
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, issuer, store, now)
}

func newFixtureWith(t *testing.T, issuer *identity.Wallet, store admin.Store, now func() time.Time) *fixture {
	t.Helper()
	f, err := build(t, issuer, store, now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newFixtureErr returns the error New returns for store.
func newFixtureErr(t *testing.T, issuer *identity.Wallet, store admin.Store) error {
	_, err := build(t, issuer, store, nil)
	return err
}

func build(t *testing.T, issuer *identity.Wallet, store admin.Store, now func() time.Time) (*fixture, error) {
	return buildOn(t, issuer, store, now, audit.NewMemStore())
}

// buildOn is build with the audit log on logStore.
func buildOn(t *testing.T, issuer *identity.Wallet, store admin.Store, now func() time.Time, logStore audit.Store) (*fixture, error) {
	return buildWith(t, issuer, store, now, logStore, fixtureOpts{})
}

// fixtureOpts adjusts a fixture: cfg edits the handler's Config, noOwner
// leaves the handler without an admin identity (for bootstrap tests).
type fixtureOpts struct {
	cfg     func(*admin.Config)
	noOwner bool
}

func newFixtureOpts(t *testing.T, now func() time.Time, o fixtureOpts) *fixture {
	t.Helper()
	issuer, err := identity.GenerateWallet("issuer")
	if err != nil {
		t.Fatal(err)
	}
	f, err := buildWith(t, issuer, fileStore(t), now, audit.NewMemStore(), o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func buildWith(t *testing.T, issuer *identity.Wallet, store admin.Store, now func() time.Time, logStore audit.Store, o fixtureOpts) (*fixture, error) {
	t.Helper()
	f := &fixture{t: t, issuer: issuer, store: store, revoked: capability.NewMemRevocationStore(nil)}
	signer, err := audit.NewNoteSigner("test/audit", issuer.Signer())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier("test/audit", issuer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if f.log, err = audit.New(t.Context(), audit.Config{Store: logStore, Signer: signer, Verifier: verifier}); err != nil {
		t.Fatal(err)
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{admin.SurfaceID: admin.AuditMetaKeys()}})
	if err != nil {
		t.Fatal(err)
	}
	spend, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := admin.Config{
		Issuer: issuer, Store: store, Revocations: f.revoked, Budget: spend, Audit: f.log, Events: events,
		Nonces: identity.NewMemNonceStore(1 << 12),
		Now:    now,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	f.admin, err = admin.New(t.Context(), cfg)
	if err != nil {
		return nil, err
	}
	if !o.noOwner {
		f.owner = admintest.NewAdmin(t, f.admin, admin.RoleOwner)
		sess, err := f.admin.IssueSession(t.Context(), f.owner.DID(), admin.RoleOwner, admin.MaxSessionTTL)
		if err != nil {
			t.Fatal(err)
		}
		f.session = sess.Token
	}
	v, err := capability.NewVerifier(capability.Config{
		TrustedIssuers: []identity.DID{issuer.DID()}, Revocations: f.revoked,
		Replay: identity.NewMemNonceStore(1 << 10), Audience: issuer.DID().String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.authz = f.admin.Policy().Authorizer(v)
	routes, err := talos.NewRouteTable([]talos.Route{{Pattern: "POST /whoami", Opcode: "test.whoami", AttestOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	f.attester, err = talos.NewAttester(talos.AttesterConfig{
		Routes:      routes,
		Attestation: identity.AttestationVerifierConfig{Keys: f.admin.Principals(), Nonces: identity.NewMemNonceStore(1 << 10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.admin.Register(mux)
	mux.Handle("POST /whoami", f.attester.Wrap(f.admin.Principals().Registered(
		func(w http.ResponseWriter, r *http.Request, p *admin.Principal) {
			json.NewEncoder(w).Encode(p)
		})))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f, nil
}

func fileStore(t *testing.T) admin.Store {
	t.Helper()
	s, err := admin.OpenFile(filepath.Join(t.TempDir(), "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends an admin request (with the credential when auth is true) and
// decodes the answer into v; it returns the status.
func (f *fixture) do(method, path string, auth bool, body string, v any) int {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+f.session)
	}
	return f.send(req, v)
}

func (f *fixture) send(req *http.Request, v any) int {
	f.t.Helper()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			f.t.Fatalf("%s %s: %d %q: %v", req.Method, req.URL.Path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// whoami makes an attested call signed by w and returns its status and
// the principal the handler saw.
func (f *fixture) whoami(w *identity.Wallet) (int, admin.Principal) {
	f.t.Helper()
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		f.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", f.srv.URL+"/whoami", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, "test.whoami"); err != nil {
		f.t.Fatal(err)
	}
	var p admin.Principal
	st := f.send(req, &p)
	return st, p
}

func (f *fixture) auditSize() uint64 {
	f.t.Helper()
	n, err := f.log.Size(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

type errBody struct {
	Code string `json:"code"`
}

func (f *fixture) expectErr(what, method, path, body, code string) {
	f.t.Helper()
	var eb errBody
	st := f.do(method, path, true, body, &eb)
	if eb.Code != code || st != contracts.HTTPStatus(contracts.Code(code)) {
		f.t.Errorf("%s: %d %q, want %s", what, st, eb.Code, code)
	}
}
