package admintest

import (
	"net/http"
	"testing"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/identity"
)

// An Admin is an admin identity for tests: a fresh wallet stored in a
// Handler with a role, that signs requests with opcode "admin".
type Admin struct {
	Wallet *identity.Wallet
	Role   string
	signer *identity.AttestationSigner
}

// NewAdmin creates a wallet and makes it an admin identity of h with role
// (through [admin.Handler.PutIdentity], as set-up code would).
func NewAdmin(t testing.TB, h *admin.Handler, role string) *Admin {
	t.Helper()
	w, err := identity.GenerateWallet("admin-" + role)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PutIdentity(t.Context(), w.DID().String(), role, "admintest"); err != nil {
		t.Fatal(err)
	}
	return SignerFor(t, w, role)
}

// SignerFor returns the Admin of a wallet that is already an admin
// identity (for example one created with POST /v1/admin/bootstrap).
func SignerFor(t testing.TB, w *identity.Wallet, role string) *Admin {
	t.Helper()
	s, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	return &Admin{Wallet: w, Role: role, signer: s}
}

// DID returns the admin's did:key.
func (a *Admin) DID() string { return a.Wallet.DID().String() }

// Sign attests req (its body, method, path and query) as this admin, with
// the admin opcode. Sign each request once: every signature has a fresh
// nonce, and the server refuses a replay.
func (a *Admin) Sign(req *http.Request) error {
	return a.signer.Sign(req, admin.SurfaceID)
}
