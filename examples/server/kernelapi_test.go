package main

import (
	"encoding/json"
	"fmt"
	"github.com/talosgo/talos/identity"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/kernelapi"
	"github.com/talosgo/talos/internal/testenv"
)

func authorize(t *testing.T, a *agent, token, tool, action string) decisionBody {
	t.Helper()
	var d decisionBody
	if st := a.call("POST", "/v1/authorize", authorizeRequest{Capability: token, Tool: tool, Action: action}, &d); st != http.StatusOK {
		t.Fatalf("authorize %s.%s: %d %+v", tool, action, st, d)
	}
	return d
}

func TestAuthorizeAttested(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	au := newAuditor(t, ts)

	d := authorize(t, alice, tok.Token, "files", "read")
	if !d.Allowed || d.Reason != "ALLOWED" || d.CapabilityHash != tok.CapabilityHash || d.Principal != alice.did || d.Grant == nil {
		t.Fatalf("allowed decision: %+v", d)
	}
	// The decision reached the audit log: verify it under a checkpoint.
	ev := au.verifyIncluded(d.AuditIndex)
	if ev.EventHash != d.EventHash || ev.Principal.PrincipalID != alice.did || ev.Outcome != "success" ||
		ev.Meta["capability_hash"] != tok.CapabilityHash || ev.SurfaceID != opAuthorize {
		t.Fatalf("audit event %+v", ev)
	}

	d = authorize(t, alice, tok.Token, "files", "write")
	if d.Allowed || d.Code != string(contracts.CodeDenied) || d.Grant != nil {
		t.Fatalf("action outside the grant: %+v", d)
	}
	if ev := au.verifyIncluded(d.AuditIndex); ev.Outcome != "denied" || ev.Meta["decision_reason"] != d.Reason {
		t.Fatalf("denial event %+v", ev)
	}
	// Holder binding: bob presenting alice's token is refused.
	if d := authorize(t, bob, tok.Token, "files", "read"); d.Allowed {
		t.Fatalf("bob used alice's token: %+v", d)
	}
	// An unregistered key cannot sign requests at all.
	stranger := unregisteredAgent(t, ts, "stranger", "team-x")
	var eb errBody
	st := stranger.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &eb)
	expectErr(t, "unregistered key", st, eb, string(contracts.CodeAuthInvalid))
}

func TestAuthorizeRateLimited(t *testing.T) {
	cfg := testConfig(t)
	cfg.RateLimits = map[string]rateSet{opAuthorize: budget.PerMinute(3)}
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	for i := 0; i < 3; i++ {
		if d := authorize(t, alice, tok.Token, "files", "read"); !d.Allowed {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	before := auditSize(t, ts)
	var eb errBody
	st := alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &eb)
	expectErr(t, "fourth call", st, eb, string(contracts.CodeRateLimited))
	if !*eb.Retryable {
		t.Fatal("RATE_LIMITED is not retryable")
	}
	if auditSize(t, ts) != before+1 {
		t.Fatal("the rate-limited call was not audited")
	}
}

func TestCapabilityAdmin(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	tok := issue(t, ts, alice.did, false, grant("files", "read", "write"))

	// Without the admin credential, nothing.
	var eb errBody
	st := decode(t, ts.do(t, "POST", "/v1/capabilities", "", []byte(`{}`)), &eb)
	expectErr(t, "issue without admin", st, eb, string(contracts.CodeAuthInvalid))
	st = decode(t, ts.do(t, "POST", "/v1/capabilities", "talos_admin_wrong", []byte(`{}`)), &eb)
	expectErr(t, "issue with a wrong credential", st, eb, string(contracts.CodeAuthInvalid))
	st = decode(t, ts.do(t, "POST", "/v1/capabilities", ts.cred, []byte(`{"subject":"`+alice.did+`","grants":[{"tool":"a","actions":["b"]}],"expires_in_seconds":0}`)), &eb)
	expectErr(t, "zero lifetime", st, eb, string(contracts.CodeInvalidInput))
	st = decode(t, ts.do(t, "POST", "/v1/capabilities", ts.cred, []byte(`{"subject":"did:key:nope","grants":[{"tool":"a","actions":["b"]}],"expires_in_seconds":60}`)), &eb)
	if st < 400 || eb.Code == "" {
		t.Fatalf("bad subject: %d %+v", st, eb)
	}

	// Delegation: alice narrows her token to bob; the server checks the
	// chain, and bob can use it for read only.
	parent, err := capability.Parse(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	child, err := capability.Delegate(parent, alice.w.Signer(), identity.MustParseDID(bob.did), []capability.Grant{grant("files", "read")}, time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	chain := capability.Chain{parent, child}.Encode()
	var db delegationBody
	if st := decode(t, ts.do(t, "POST", "/v1/capabilities/delegations", ts.cred, mustJSON(delegationRequest{Chain: chain})), &db); st != 200 ||
		!db.Valid || db.Depth != 2 || db.Leaf != bob.did || len(db.Hashes) != 2 || db.Hashes[0] != tok.CapabilityHash {
		t.Fatalf("delegation check: %d %+v", st, db)
	}
	if d := authorize(t, bob, chain, "files", "read"); !d.Allowed {
		t.Fatalf("bob with the chain: %+v", d)
	}
	if d := authorize(t, bob, chain, "files", "write"); d.Allowed {
		t.Fatalf("the chain was widened: %+v", d)
	}
	// A chain not rooted in the server is refused.
	rogue, err := capability.Issue(bob.w.Signer(), identity.MustParseDID(alice.did), []capability.Grant{grant("files", "read")}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	st = decode(t, ts.do(t, "POST", "/v1/capabilities/delegations", ts.cred, mustJSON(delegationRequest{Chain: rogue.Encode()})), &eb)
	if st < 400 || eb.Code == "" {
		t.Fatalf("untrusted root: %d %+v", st, eb)
	}

	// Revoking the parent revokes the chain at once.
	var rv map[string]any
	if st := decode(t, ts.do(t, "POST", "/v1/capabilities/revocations", ts.cred, mustJSON(revokeRequest{CapabilityHash: tok.CapabilityHash})), &rv); st != 200 {
		t.Fatalf("revoke: %d %v", st, rv)
	}
	if d := authorize(t, bob, chain, "files", "read"); d.Allowed || d.Reason != string(capability.ReasonRevoked) || d.Code != string(contracts.CodeAuthRevoked) {
		t.Fatalf("revoked chain: %+v", d)
	}
	if d := authorize(t, alice, tok.Token, "files", "read"); d.Allowed {
		t.Fatalf("revoked token: %+v", d)
	}
	st = decode(t, ts.do(t, "POST", "/v1/capabilities/revocations", ts.cred, []byte(`{"capability_hash":"abc"}`)), &eb)
	expectErr(t, "revoke a bad hash", st, eb, string(contracts.CodeInvalidInput))
	// By nonce too.
	tok2 := issue(t, ts, alice.did, false, grant("files", "read"))
	p2, _ := capability.Parse(tok2.Token)
	if st := decode(t, ts.do(t, "POST", "/v1/capabilities/revocations", ts.cred, mustJSON(revokeRequest{Nonce: p2.Nonce()})), &rv); st != 200 {
		t.Fatalf("revoke by nonce: %d", st)
	}
	if d := authorize(t, alice, tok2.Token, "files", "read"); d.Allowed {
		t.Fatalf("token revoked by nonce: %+v", d)
	}
}

func TestRBACAndPrincipals(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	ta := issue(t, ts, alice.did, false, grant("files", "read"))
	tb := issue(t, ts, bob.did, false, grant("files", "read"))

	var out map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/rbac/roles/reader", ts.cred, []byte(`{"permissions":["files.read"]}`)), &out); st != 200 {
		t.Fatalf("put role: %d %v", st, out)
	}
	var eb errBody
	st := decode(t, ts.do(t, "PUT", "/v1/rbac/bindings/b1", ts.cred, []byte(`{"principal_id":"x","role_id":"nope","scope":{"scope_type":"global","attributes":{}}}`)), &eb)
	expectErr(t, "binding to an unknown role", st, eb, string(contracts.CodeInvalidInput))
	// Before any binding, RBAC is not enforced.
	if d := authorize(t, bob, tb.Token, "files", "read"); !d.Allowed {
		t.Fatalf("before bindings: %+v", d)
	}
	body := fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, alice.did)
	if st := decode(t, ts.do(t, "PUT", "/v1/rbac/bindings/b1", ts.cred, []byte(body)), &out); st != 200 {
		t.Fatalf("put binding: %d %v", st, out)
	}
	if d := authorize(t, alice, ta.Token, "files", "read"); !d.Allowed {
		t.Fatalf("bound principal: %+v", d)
	}
	if d := authorize(t, bob, tb.Token, "files", "read"); d.Allowed || d.Reason != string(capability.ReasonRBACDenied) {
		t.Fatalf("unbound principal: %+v", d)
	}

	// Principals: read back, unknown, invalid.
	var p principal
	if st := decode(t, ts.do(t, "GET", "/v1/principals/"+alice.did, ts.cred, nil), &p); st != 200 || p.DID != alice.did || p.TeamID != "team-a" {
		t.Fatalf("get principal: %d %+v", st, p)
	}
	st = decode(t, ts.do(t, "GET", "/v1/principals/did:key:z6MkunknownKey", ts.cred, nil), &eb)
	expectErr(t, "unknown principal", st, eb, string(contracts.CodeNotFound))
	st = decode(t, ts.do(t, "PUT", "/v1/principals/not-a-did", ts.cred, []byte(`{"team_id":"t"}`)), &eb)
	if st < 400 || eb.Code == "" {
		t.Fatalf("bad DID: %d %+v", st, eb)
	}
	st = decode(t, ts.do(t, "PUT", "/v1/principals/"+alice.did, ts.cred, []byte(`{"team_id":""}`)), &eb)
	expectErr(t, "empty team", st, eb, string(contracts.CodeInvalidInput))

	// Unregistering a key: it can no longer sign requests.
	var del map[string]any
	if st := decode(t, ts.do(t, "DELETE", "/v1/principals/"+bob.did, ts.cred, nil), &del); st != 200 || del["deleted"] != true {
		t.Fatalf("delete bob: %d %v", st, del)
	}
	st = bob.call("POST", "/v1/authorize", authorizeRequest{Capability: tb.Token, Tool: "files", Action: "read"}, &eb)
	expectErr(t, "deleted principal", st, eb, string(contracts.CodeAuthInvalid))
	st = decode(t, ts.do(t, "DELETE", "/v1/principals/"+bob.did, ts.cred, nil), &eb)
	expectErr(t, "delete twice", st, eb, string(contracts.CodeNotFound))

	// Identity is public.
	var id map[string]any
	if st := decode(t, ts.do(t, "GET", "/v1/identity", "", nil), &id); st != 200 || id["did"] != ts.DID().String() || id["audit_verifier_key"] == "" {
		t.Fatalf("identity: %d %v", st, id)
	}
}

func TestBudgetsAdmin(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	var eb errBody
	for _, c := range []struct{ scope, body, code string }{
		{"org:x", `{"limit_usd":"1","mode":"hard","period":"monthly"}`, string(contracts.CodeInvalidInput)},
		{"team:a", `{"limit_usd":"-1","mode":"hard","period":"monthly"}`, string(contracts.CodeInvalidInput)},
		{"team:a", `{"limit_usd":"1","mode":"loud","period":"monthly"}`, string(contracts.CodeInvalidInput)},
		{"team:a", `{"limit_usd":"1","mode":"hard","period":"weekly"}`, string(contracts.CodeInvalidInput)},
	} {
		st := decode(t, ts.do(t, "PUT", "/v1/budgets/"+c.scope, ts.cred, []byte(c.body)), &eb)
		expectErr(t, c.scope+" "+c.body, st, eb, c.code)
	}
	putBudget(t, ts, "team:a", "2.5", "warn")
	u := getBudget(t, ts, "team:a", "")
	if u.Limit != "2.5" || u.Used != "0" || u.Mode != "warn" {
		t.Fatalf("budget: %+v", u)
	}
	st := decode(t, ts.do(t, "GET", "/v1/budgets/team:zzz", ts.cred, nil), &eb)
	expectErr(t, "unknown budget", st, eb, string(contracts.CodeNotFound))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// adminSetup registers alice, a role bound to her and a budget on ts.
func adminSetup(t *testing.T, ts *testServer) (*agent, tokenBody) {
	t.Helper()
	alice := newAgent(t, ts, "alice", "team-a")
	var out map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/rbac/roles/reader", ts.cred, []byte(`{"permissions":["files.read"]}`)), &out); st != 200 {
		t.Fatalf("put role: %d %v", st, out)
	}
	body := fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, alice.did)
	if st := decode(t, ts.do(t, "PUT", "/v1/rbac/bindings/b1", ts.cred, []byte(body)), &out); st != 200 {
		t.Fatalf("put binding: %d %v", st, out)
	}
	putBudget(t, ts, "team:team-a", "7", "warn")
	return alice, issue(t, ts, alice.did, false, grant("files", "read", "write"))
}

// checkAdminState checks on ts what adminSetup put on another server.
func checkAdminState(t *testing.T, ts *testServer, alice *agent, tok tokenBody) {
	t.Helper()
	a := alice.on(ts)
	if d := authorize(t, a, tok.Token, "files", "read"); !d.Allowed {
		t.Fatalf("registered principal with its role: %+v", d)
	}
	if d := authorize(t, a, tok.Token, "files", "write"); d.Allowed || d.Reason != string(capability.ReasonRBACDenied) {
		t.Fatalf("permission outside the role: %+v", d)
	}
	if u := getBudget(t, ts, "team:team-a", ""); u.Limit != "7" || u.Mode != "warn" {
		t.Fatalf("budget: %+v", u)
	}
	var p principal
	if st := decode(t, ts.do(t, "GET", "/v1/principals/"+alice.did, ts.cred, nil), &p); st != 200 || p.TeamID != "team-a" {
		t.Fatalf("principal: %d %+v", st, p)
	}
}

func TestAdminStateSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	alice, tok := adminSetup(t, ts)
	if err := ts.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts2 := newTestServer(t, cfg)
	ts2.cred = ts.cred // shown on the first start only
	checkAdminState(t, ts2, alice, tok)
}

func TestAdminStateSharedByReplicas(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32) // replicas share the master key
	a := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	alice, tok := adminSetup(t, a)
	// A second replica on the same database, started afterwards, and one
	// started before the registration (which finds alice on first use).
	cfg2 := cfg
	cfg2.DataDir = t.TempDir() + "/replica"
	b := newTestServer(t, cfg2)
	b.cred = a.cred
	checkAdminState(t, b, alice, tok)

	bob := newAgent(t, a, "bob", "team-b")
	if st := bob.on(b).call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, nil); st != 200 {
		t.Fatalf("bob, registered on replica a, on replica b: %d", st)
	}
	// Deleted on replica a: replica b refuses bob once its cached view of
	// the registration is older than admin.PrincipalCacheTTL (the clock
	// is the admin package's to move: gateway/admin's TestSharedRegistry);
	// a replica that has not cached bob refuses him at once.
	if st := decode(t, a.do(t, "DELETE", "/v1/principals/"+bob.did, a.cred, nil), nil); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	cfg3 := cfg
	cfg3.DataDir = t.TempDir() + "/replica3"
	c := newTestServer(t, cfg3)
	var eb errBody
	st := bob.on(c).call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &eb)
	expectErr(t, "bob deleted on replica a, on a new replica", st, eb, string(contracts.CodeAuthInvalid))
}

// TestIdentityRoutes checks that an agent that builds its route table from
// the published opcodes (talos.NewClientRouteTable) signs every attested
// route with the opcode the server verifies.
func TestIdentityRoutes(t *testing.T) {
	ts, _, _ := badInputServer(t)
	var id struct {
		Routes map[string]string `json:"attested_routes"`
	}
	if st := decode(t, ts.do(t, "GET", "/v1/identity", "", nil), &id); st != 200 || len(id.Routes) < 16 {
		t.Fatalf("identity: %d %v", st, id.Routes)
	}
	client, err := talos.NewClientRouteTable(id.Routes)
	if err != nil {
		t.Fatal(err)
	}
	sample := strings.NewReplacer("{id}", contracts.NewUUIDv7(), "{member}", "did:key:z6Mkx", "{$}", "")
	for pattern, op := range id.Routes {
		method, path, _ := strings.Cut(pattern, " ")
		r := httptest.NewRequest(method, sample.Replace(path), nil)
		got, err := client.Opcode(r)
		if err != nil || got != op {
			t.Errorf("%s: client opcode %q (%v), server %q", pattern, got, err, op)
		}
		if srv, _ := ts.core.routes.Opcode(r); srv != op {
			t.Errorf("%s: server table %q, published %q", pattern, srv, op)
		}
	}
}

// The wire types of the kernel and admin APIs, as the tests name them.
type (
	authorizeRequest  = kernelapi.AuthorizeRequest
	decisionBody      = kernelapi.Decision
	issueRequest      = admin.IssueRequest
	tokenBody         = admin.TokenResponse
	delegationRequest = admin.DelegationRequest
	delegationBody    = admin.DelegationResponse
	revokeRequest     = admin.RevokeRequest
)
