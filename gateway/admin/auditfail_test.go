package admin_test

import (
	"fmt"
	"net/http"
	"testing"

	auditfile "github.com/talosgo/talos/audit/file"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestAuditFailureIsReported closes the audit log's file store under a
// running Handler: every change is then answered as a failure (an
// INTERNAL error, not a success the log does not hold). The change itself
// has been applied, as documented: the registration is stored.
func TestAuditFailureIsReported(t *testing.T) {
	logStore, err := auditfile.Open(t.Context(), auditfile.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := identity.GenerateWallet("issuer")
	f, err := buildOn(t, issuer, fileStore(t), nil, logStore)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := identity.GenerateWallet("alice")
	did := alice.DID().String()
	if st := f.do("PUT", "/v1/principals/"+did, true, `{"team_id":"team-a"}`, nil); st != http.StatusOK {
		t.Fatalf("with a working log: %d", st)
	}
	if err := logStore.Close(); err != nil {
		t.Fatal(err)
	}
	f.expectErr("registration without a log", "PUT", "/v1/principals/"+did, `{"team_id":"team-b"}`, string(contracts.CodeInternal))
	f.expectErr("issue without a log", "POST", "/v1/capabilities",
		fmt.Sprintf(`{"subject":%q,"grants":[{"tool":"files","actions":["read"]}],"expires_in_seconds":60}`, did), string(contracts.CodeInternal))
	f.expectErr("revocation without a log", "POST", "/v1/capabilities/revocations", `{"nonce":"n-1"}`, string(contracts.CodeInternal))
	if p, err := f.admin.Principals().Lookup(t.Context(), did); err != nil || p == nil || p.TeamID != "team-b" {
		t.Fatalf("the change was not applied: %+v %v", p, err)
	}
	if revoked, err := f.revoked.AnyRevoked(t.Context(), []string{capability.NonceKey("n-1")}); err != nil || !revoked {
		t.Fatalf("the revocation was not applied: %v %v", revoked, err)
	}
}
