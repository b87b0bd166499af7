package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"
)

func TestFileStoreConformance(t *testing.T) {
	admintest.Run(t, fileStore, func(t *testing.T, s admin.Store) admin.Store {
		s2, err := admin.OpenFile(s.(*admin.FileStore).Path())
		if err != nil {
			t.Fatal(err)
		}
		return s2
	})
}

func TestFileStoreRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.json")
	if err := os.WriteFile(path, []byte(`[{"kind":"role","id":"x","doc":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := admin.OpenFile(path)
	if contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("corrupt file: %v", err)
	}
}

func TestFileStoreWriteFailureChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := admin.OpenFile(filepath.Join(dir, "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), admin.Doc{Kind: admin.KindRole, ID: "a", Doc: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = s.Put(t.Context(), admin.Doc{Kind: admin.KindRole, ID: "b", Doc: []byte(`{}`)})
	if contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("put without a directory: %v", err)
	}
	if existed, err := s.Delete(t.Context(), admin.KindRole, "a"); contracts.CodeOf(err) != contracts.CodeInternal || existed {
		t.Fatalf("delete without a directory: %v %v", existed, err)
	}
	all, _ := s.All(t.Context())
	if len(all) != 1 || all[0].ID != "a" {
		t.Fatalf("a failed write changed the store: %v", all)
	}
}

func TestNewRequiresEveryDependency(t *testing.T) {
	if _, err := admin.New(t.Context(), admin.Config{Store: fileStore(t)}); err == nil {
		t.Fatal("New accepted a Config without Issuer, Revocations, Budget, Audit, Events and Authenticate")
	}
}

// TestAdminAPI walks every admin route with the real back-ends: each
// change is audited, RBAC decides through the Authorizer, budgets report
// usage, revocations reach the verifier, and bad input changes nothing.
func TestAdminAPI(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	alice, _ := identity.GenerateWallet("alice")
	did := alice.DID().String()

	if st := f.do("PUT", "/v1/principals/"+did, false, `{"team_id":"team-a"}`, nil); st != http.StatusUnauthorized {
		t.Fatalf("without the admin credential: %d", st)
	}
	size := f.auditSize()
	var p admin.Principal
	if st := f.do("PUT", "/v1/principals/"+did, true, `{"team_id":"team-a"}`, &p); st != 200 || p.DID != did || p.TeamID != "team-a" || p.ID != did {
		t.Fatalf("register: %d %+v", st, p)
	}
	if f.auditSize() != size+1 {
		t.Fatal("registration not audited")
	}
	if st := f.do("GET", "/v1/principals/"+did, true, "", &p); st != 200 || p.TeamID != "team-a" {
		t.Fatalf("get principal: %d %+v", st, p)
	}

	// Issue a capability and authorize with it; then RBAC narrows it.
	var tok admin.TokenResponse
	if st := f.do("POST", "/v1/capabilities", true, fmt.Sprintf(`{"subject":%q,"grants":[{"tool":"files","actions":["read","write"]}],"expires_in_seconds":600}`, did), &tok); st != http.StatusCreated || tok.CapabilityHash == "" {
		t.Fatalf("issue: %d %+v", st, tok)
	}
	authorize := func(action string) capability.Decision {
		t.Helper()
		d, err := f.authz.Authorize(t.Context(), capability.Request{Capability: tok.Token, Principal: alice.DID(), Tool: "files", Action: action})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := authorize("write"); !d.Allowed {
		t.Fatalf("write before RBAC: %+v", d)
	}
	if st := f.do("PUT", "/v1/rbac/roles/reader", true, `{"permissions":["files:read"]}`, nil); st != 200 {
		t.Fatalf("role: %d", st)
	}
	if d := authorize("write"); !d.Allowed {
		t.Fatal("a role without bindings changed decisions")
	}
	if st := f.do("PUT", "/v1/rbac/bindings/alice-reads", true, fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, did), nil); st != 200 {
		t.Fatalf("binding: %d", st)
	}
	if d := authorize("write"); d.Allowed || d.Reason != capability.ReasonRBACDenied {
		t.Fatalf("write outside the role: %+v", d)
	}
	if d := authorize("read"); !d.Allowed {
		t.Fatalf("read inside the role: %+v", d)
	}

	// Budgets.
	var b map[string]any
	if st := f.do("PUT", "/v1/budgets/team:team-a", true, `{"limit_usd":"5.00","mode":"hard","period":"daily"}`, &b); st != 200 || b["limit_usd"] != "5" {
		t.Fatalf("put budget: %d %v", st, b)
	}
	if st := f.do("GET", "/v1/budgets/team:team-a", true, "", &b); st != 200 || b["remaining_usd"] != "5" {
		t.Fatalf("get budget: %d %v", st, b)
	}
	if st := f.do("PUT", "/v1/budgets/key:"+did, true, `{"limit_usd":"1","mode":"warn","period":"rolling:1h"}`, nil); st != 200 {
		t.Fatalf("key budget: %d", st)
	}
	if st := f.do("GET", "/v1/budgets/key:"+did, true, "", &b); st != 200 || b["mode"] != "warn" {
		t.Fatalf("key budget usage (team from the registration): %d %v", st, b)
	}
	res := f.admin.Budgets().Reservation(&p, 7, "mcp")
	if res == nil || len(res.Scopes) != 2 || res.Group != admin.TeamScope("team-a") || res.Amount != 7 || res.Meta.KeyID != did {
		t.Fatalf("reservation: %+v", res)
	}

	// Delegation pre-flight and revocation.
	chain, err := capability.ParseChain(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	var del admin.DelegationResponse
	if st := f.do("POST", "/v1/capabilities/delegations", true, fmt.Sprintf(`{"chain":%q}`, chain.Encode()), &del); st != 200 || !del.Valid || del.Depth != 1 || del.Leaf != did {
		t.Fatalf("delegation check: %d %+v", st, del)
	}
	if st := f.do("POST", "/v1/capabilities/revocations", true, fmt.Sprintf(`{"capability_hash":%q}`, tok.CapabilityHash), nil); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if d := authorize("read"); d.Allowed || d.Reason != capability.ReasonRevoked {
		t.Fatalf("revoked token: %+v", d)
	}

	// Bad input: typed errors, nothing stored, nothing audited.
	before, _ := f.store.All(t.Context())
	size = f.auditSize()
	f.expectErr("bad did", "PUT", "/v1/principals/did:key:nope", `{"team_id":"a"}`, string(contracts.CodeInvalidInput))
	f.expectErr("empty team", "PUT", "/v1/principals/"+did, `{"team_id":""}`, string(contracts.CodeInvalidInput))
	f.expectErr("long team", "PUT", "/v1/principals/"+did, `{"team_id":"`+strings.Repeat("t", 129)+`"}`, string(contracts.CodeInvalidInput))
	f.expectErr("duplicate key", "PUT", "/v1/principals/"+did, `{"team_id":"a","team_id":"b"}`, string(contracts.CodeInvalidInput))
	f.expectErr("case-folded key", "PUT", "/v1/rbac/roles/r", `{"permissions":[],"Permissions":[]}`, string(contracts.CodeInvalidInput))
	f.expectErr("unknown field", "PUT", "/v1/budgets/team:x", `{"limit_usd":"1","mode":"hard","period":"daily","x":1}`, string(contracts.CodeInvalidInput))
	f.expectErr("bad scope", "PUT", "/v1/budgets/org:x", `{"limit_usd":"1","mode":"hard"}`, string(contracts.CodeInvalidInput))
	f.expectErr("bad period", "PUT", "/v1/budgets/team:x", `{"limit_usd":"1","mode":"hard","period":"weekly"}`, string(contracts.CodeInvalidInput))
	f.expectErr("bad rolling period", "PUT", "/v1/budgets/team:x", `{"limit_usd":"1","mode":"hard","period":"rolling:1s"}`, string(contracts.CodeInvalidInput))
	f.expectErr("bad limit", "PUT", "/v1/budgets/team:x", `{"limit_usd":"1.0000001","mode":"hard"}`, string(contracts.CodeInvalidInput))
	f.expectErr("binding to a missing role", "PUT", "/v1/rbac/bindings/b", `{"principal_id":"p","role_id":"missing","scope":{}}`, string(contracts.CodeInvalidInput))
	f.expectErr("revoke both", "POST", "/v1/capabilities/revocations", fmt.Sprintf(`{"capability_hash":%q,"nonce":"n"}`, tok.CapabilityHash), string(contracts.CodeInvalidInput))
	f.expectErr("revoke bad hash", "POST", "/v1/capabilities/revocations", `{"capability_hash":"ABC"}`, string(contracts.CodeInvalidInput))
	f.expectErr("lifetime", "POST", "/v1/capabilities", fmt.Sprintf(`{"subject":%q,"grants":[],"expires_in_seconds":2592001}`, did), string(contracts.CodeInvalidInput))
	f.expectErr("chain", "POST", "/v1/capabilities/delegations", `{"chain":"garbage"}`, string(contracts.CodeInvalidCapability))
	f.expectErr("budget of an unregistered key", "GET", "/v1/budgets/key:did:key:z6MkunknownX", "", string(contracts.CodeNotFound))
	after, _ := f.store.All(t.Context())
	if len(after) != len(before) || f.auditSize() != size {
		t.Fatalf("bad input changed state: %d→%d documents, audit %d→%d", len(before), len(after), size, f.auditSize())
	}

	// Unregister.
	if st := f.do("DELETE", "/v1/principals/"+did, true, "", nil); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	f.expectErr("deleted principal", "GET", "/v1/principals/"+did, "", string(contracts.CodeNotFound))
	f.expectErr("second delete", "DELETE", "/v1/principals/"+did, "", string(contracts.CodeNotFound))
	f.expectErr("budget of a key no longer registered", "GET", "/v1/budgets/key:"+did, "", string(contracts.CodeInvalidInput))
	if st := f.do("GET", "/v1/budgets/key:"+did+"?team=team-a", true, "", &b); st != 200 {
		t.Fatalf("budget with ?team=: %d %v", st, b)
	}
}

// TestRegistryAuthenticates checks that only registered keys sign requests
// through an Attester resolving with the registry, and that the handler
// sees the registration.
func TestRegistryAuthenticates(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	alice, _ := identity.GenerateWallet("alice")
	if st, _ := f.whoami(alice); st != http.StatusUnauthorized {
		t.Fatalf("unregistered key: %d", st)
	}
	if st := f.do("PUT", "/v1/principals/"+alice.DID().String(), true, `{"team_id":"team-a"}`, nil); st != 200 {
		t.Fatal(st)
	}
	st, p := f.whoami(alice)
	if st != 200 || p.DID != alice.DID().String() || p.TeamID != "team-a" {
		t.Fatalf("registered key: %d %+v", st, p)
	}
	if st := f.do("DELETE", "/v1/principals/"+alice.DID().String(), true, "", nil); st != 200 {
		t.Fatal(st)
	}
	if st, _ := f.whoami(alice); st != http.StatusUnauthorized {
		t.Fatalf("deleted key: %d", st)
	}
}

// TestStateSurvivesRestart checks that a new Handler on the same store
// loads every kind of document, and that a document that no longer
// parses stops it.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.json")
	open := func() admin.Store {
		s, err := admin.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	issuer, _ := identity.GenerateWallet("issuer")
	f := newFixtureWith(t, issuer, open(), nil)
	alice, _ := identity.GenerateWallet("alice")
	did := alice.DID().String()
	for _, c := range [][3]string{
		{"PUT", "/v1/principals/" + did, `{"team_id":"team-a"}`},
		{"PUT", "/v1/rbac/roles/reader", `{"permissions":["files:read"]}`},
		{"PUT", "/v1/rbac/bindings/b1", fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, did)},
		{"PUT", "/v1/budgets/team:team-a", `{"limit_usd":"2","mode":"hard","period":"monthly"}`},
	} {
		if st := f.do(c[0], c[1], true, c[2], nil); st != 200 {
			t.Fatalf("%s %s: %d", c[0], c[1], st)
		}
	}
	g := newFixtureWith(t, issuer, open(), nil)
	if st, p := g.whoami(alice); st != 200 || p.TeamID != "team-a" {
		t.Fatalf("principal after restart: %d %+v", st, p)
	}
	if g.admin.Policy().Current() == nil {
		t.Fatal("RBAC policy not loaded")
	}
	if s, ok := g.admin.Budgets().Get("team:team-a"); !ok || s.Limit != 2_000_000 {
		t.Fatalf("budget after restart: %+v %v", s, ok)
	}

	// A stored budget that no longer validates stops start-up.
	s := open()
	if err := s.Put(t.Context(), admin.Doc{Kind: admin.KindBudget, ID: "team:b", Doc: json.RawMessage(`{"limit_usd":"x","mode":"hard","period":"daily"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := newFixtureErr(t, issuer, open()); err == nil || !strings.Contains(err.Error(), `budget "team:b"`) {
		t.Fatalf("bad stored budget: %v", err)
	}
}

// TestRegistryCacheNotSharedByDefault checks that a registration cached
// from a store that is not shared (one process's file) does not expire.
func TestRegistryCacheNotSharedByDefault(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	f := newFixture(t, fileStore(t), clock)
	alice, _ := identity.GenerateWallet("alice")
	if st := f.do("PUT", "/v1/principals/"+alice.DID().String(), true, `{"team_id":"team-a"}`, nil); st != 200 {
		t.Fatal(st)
	}
	now = now.Add(admin.PrincipalCacheTTL * 10)
	if st, _ := f.whoami(alice); st != 200 {
		t.Fatalf("cached registration on a private store: %d", st)
	}
}
