package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

// TestAdminBootstrapCredentialSpent: the printed bootstrap credential
// created the first owner (newTestServer did) and is then spent: it
// answers 401 at POST /v1/admin/bootstrap, also after a restart, and it
// authenticates no other route.
func TestAdminBootstrapCredentialSpent(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	if ts.bootstrap == "" || ts.owner == nil {
		t.Fatal("no bootstrap credential printed")
	}
	w, _ := identity.GenerateWallet("late")
	body := fmt.Appendf(nil, `{"did":%q}`, w.DID().String())
	var eb errBody
	if st := decode(t, ts.do(t, "POST", "/v1/admin/bootstrap", ts.bootstrap, body), &eb); st != 401 || eb.Code != string(contracts.CodeAuthInvalid) {
		t.Fatalf("spent bootstrap credential: %d %s", st, eb.Code)
	}
	for _, p := range []string{"/v1/principals", "/v1/config/budget/x", "/v1/admin/whoami", "/v1/audit/events"} {
		if st := decode(t, ts.do(t, "GET", p, ts.bootstrap, nil), nil); st != 401 {
			t.Errorf("bootstrap credential on GET %s: %d", p, st)
		}
	}
	// The owner's session works; its identity is listed.
	var list admin.List[admin.Identity]
	if st := decode(t, ts.do(t, "GET", "/v1/admin/identities", ts.cred, nil), &list); st != 200 || len(list.Items) != 1 ||
		list.Items[0].DID != ts.owner.DID() || list.Items[0].CreatedBy != "bootstrap" {
		t.Fatalf("identities: %d %+v", st, list)
	}
	ts.Close(t.Context())
	again := newTestServer(t, cfg)
	if st := decode(t, again.do(t, "POST", "/v1/admin/bootstrap", ts.bootstrap, body), nil); st != 401 {
		t.Fatalf("spent bootstrap credential after a restart: %d", st)
	}
	if st := decode(t, again.do(t, "GET", "/v1/admin/whoami", ts.cred, nil), nil); st != 200 {
		t.Fatalf("owner session after a restart: %d", st)
	}
}

// TestAdminRecoveryFile: a recovery file written with the data
// directory's master key admits its credential once (one more owner),
// then it is gone and the credential answers 401.
func TestAdminRecoveryFile(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, masterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	master, err := contracts.DecodeBase64URL(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	cred := admin.BootstrapPrefix + "recovered-credential-for-the-test-0123456789ab"
	if err := admin.WriteRecoveryFile(cfg.DataDir, master, cred, time.Now()); err != nil {
		t.Fatal(err)
	}
	w, _ := identity.GenerateWallet("recovered")
	body := fmt.Appendf(nil, `{"did":%q}`, w.DID().String())
	if st := decode(t, ts.do(t, "POST", "/v1/admin/bootstrap", cred, body), nil); st != 201 {
		t.Fatalf("recovery: %d", st)
	}
	if st := decode(t, ts.do(t, "POST", "/v1/admin/bootstrap", cred, body), nil); st != 401 {
		t.Fatalf("recovery credential twice: %d", st)
	}
	n, _ := ts.core.log.Size(t.Context())
	entry, _ := ts.core.log.Entry(t.Context(), n-1)
	if ev, err := audit.ParseEvent(entry); err != nil || ev.SurfaceID != admin.SurfaceID || ev.Meta["via"] != "recovery" || ev.Principal.PrincipalID != w.DID().String() {
		t.Fatalf("recovery audit event: %+v %v", ev, err)
	}
}

// TestAdminRoutesByRole: every admin route the server mounts (the admin
// API's, the config service's, the audit entry readers) × every role, as
// the contract's table says: allowed, or 403 RBAC_DENIED; 401 without a
// credential.
func TestAdminRoutesByRole(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	type route struct{ pattern, tool string }
	var routes []route
	for _, rt := range ts.core.admin.Routes() {
		if rt.Tool != "" {
			routes = append(routes, route{rt.Pattern, rt.Tool})
		}
	}
	for _, p := range []string{"PUT /v1/config/{kind}/{name}", "GET /v1/config/{kind}/{name}", "GET /v1/config/{kind}/{name}/versions", "GET /v1/config/{kind}/{name}/versions/{n}"} {
		routes = append(routes, route{p, admin.ToolConfig})
	}
	readers := []string{"GET /v1/audit/events", "GET /v1/audit/entries/{index}", "GET /v1/audit/bundle"}
	for _, p := range readers {
		routes = append(routes, route{p, admin.ToolAudit})
	}
	sessions := map[string]string{}
	for _, role := range admin.Roles() {
		sessions[role] = ts.newAdmin(t, role).session(t, ts, "")
	}
	fill := strings.NewReplacer("{did}", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "{id}", "x", "{scope}", "team:x",
		"{hash}", strings.Repeat("a", 64), "{kind}", "budget", "{name}", "x", "{n}", "1", "{index}", "0")
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = fill.Replace(path)
		action := admin.ActionWrite
		if method == "GET" {
			action = admin.ActionRead
		}
		if st := decode(t, ts.do(t, method, path, "", nil), nil); st != 401 {
			t.Errorf("%s without a credential: %d", rt.pattern, st)
		}
		for _, role := range admin.Roles() {
			want := contractGrants(role, rt.tool, action)
			var eb errBody
			st := decode(t, ts.do(t, method, path, sessions[role], nil), &eb)
			if want && (st == 401 || st == 403) || !want && (st != 403 || eb.Code != string(contracts.CodeRBACDenied)) {
				t.Errorf("%s as %s: %d %s, want allowed=%v", rt.pattern, role, st, eb.Code, want)
			}
		}
	}
}

// contractGrants is adminapi.md's table of built-in roles.
func contractGrants(role, tool, action string) bool {
	switch role {
	case admin.RoleOwner:
		return true
	case admin.RoleOperator:
		return action == "read" || tool != admin.ToolAdmins && tool != admin.ToolSecrets
	case admin.RoleAuditor:
		return action == "read" && (tool == admin.ToolAudit || tool == admin.ToolStats)
	case admin.RoleViewer:
		return action == "read" && tool != admin.ToolAudit && tool != admin.ToolSecrets
	}
	return false
}

// TestAdminAttestedAndAudited: a signed admin request (no session) works
// on a server route, and its audit event names the admin's DID.
func TestAdminAttestedAndAudited(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	w, _ := identity.GenerateWallet("agent")
	resp := ts.signed(t, ts.owner, "PUT", "/v1/principals/"+w.DID().String(), []byte(`{"team_id":"team-a"}`))
	if st := decode(t, resp, nil); st != 200 {
		t.Fatalf("attested admin call: %d", st)
	}
	n, _ := ts.core.log.Size(t.Context())
	entry, _ := ts.core.log.Entry(t.Context(), n-1)
	ev, err := audit.ParseEvent(entry)
	if err != nil || ev.SurfaceID != admin.SurfaceID || ev.Principal.PrincipalID != ts.owner.DID() || ev.Meta["admin_auth_mode"] != "attested" {
		raw, _ := json.Marshal(ev)
		t.Fatalf("audit event: %s %v", raw, err)
	}
	var who admin.WhoamiResponse
	if st := decode(t, ts.signed(t, ts.owner, "GET", "/v1/admin/whoami", nil), &who); st != 200 || who.AuthMode != "attested" || who.Role != "owner" {
		t.Fatalf("whoami: %d %+v", st, who)
	}
	if st := decode(t, ts.do(t, "DELETE", "/v1/admin/sessions/current", ts.cred, nil), nil); st != http.StatusOK {
		t.Fatalf("revoke the session: %d", st)
	}
	if st := decode(t, ts.do(t, "GET", "/v1/admin/whoami", ts.cred, nil), nil); st != 401 {
		t.Fatalf("revoked session: %d", st)
	}
}

// TestAdminSessionsAcrossReplicas: two servers on one PostgreSQL (the
// replicas of a deployment): the bootstrap credential is spent for both,
// a session minted on one is accepted by the other, and a revocation or a
// demotion on one applies on the other at the next request.
func TestAdminSessionsAcrossReplicas(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	cfg := testConfig(t)
	cfg.PostgresURL = dsn
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	cfg.MasterKey[0] = 9
	dropTablesAtEnd(t, dsn, cfg.tablePrefix)
	cfgB := cfg
	cfgB.DataDir = t.TempDir() + "/data-b"
	cfgB.MasterKey = append([]byte(nil), cfg.MasterKey...) // New clears the key it was given
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfgB)
	if a.owner == nil || b.bootstrap != "" {
		t.Fatalf("first replica bootstrapped %v, second printed %q", a.owner != nil, b.bootstrap)
	}
	w, _ := identity.GenerateWallet("late")
	body := fmt.Appendf(nil, `{"did":%q}`, w.DID().String())
	if st := decode(t, b.do(t, "POST", "/v1/admin/bootstrap", a.bootstrap, body), nil); st != 401 {
		t.Fatalf("spent bootstrap credential on the other replica: %d", st)
	}
	var who admin.WhoamiResponse
	if st := decode(t, b.do(t, "GET", "/v1/admin/whoami", a.cred, nil), &who); st != 200 || who.DID != a.owner.DID() {
		t.Fatalf("session on the other replica: %d %+v", st, who)
	}
	// An operator made on A, its session minted on B, demoted on A.
	op := a.newAdmin(t, admin.RoleOperator)
	sess := op.session(t, b, "")
	if st := decode(t, a.do(t, "PUT", "/v1/budgets/team:x", sess, []byte(`{"limit_usd":"1","mode":"hard"}`)), nil); st != 200 {
		t.Fatalf("operator session from B on A: %d", st)
	}
	if st := decode(t, a.signed(t, a.owner, "PUT", "/v1/admin/identities/"+op.DID(), []byte(`{"role":"viewer"}`)), nil); st != 200 {
		t.Fatal(st)
	}
	if st := decode(t, b.do(t, "GET", "/v1/budgets", sess, nil), nil); st != 401 {
		t.Fatalf("operator session on B after the demotion on A: %d", st)
	}
	if st := decode(t, b.signed(t, op, "PUT", "/v1/budgets/team:x", []byte(`{"limit_usd":"1","mode":"hard"}`)), nil); st != 403 {
		t.Fatalf("demoted admin's signed write on B: %d", st)
	}
	// Revoked on B, refused on A.
	if st := decode(t, b.do(t, "DELETE", "/v1/admin/sessions/current", a.cred, nil), nil); st != 200 {
		t.Fatal(st)
	}
	if st := decode(t, a.do(t, "GET", "/v1/admin/whoami", a.cred, nil), nil); st != 401 {
		t.Fatalf("session revoked on B, on A: %d", st)
	}
}
