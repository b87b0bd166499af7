package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"
)

// A testAdmin is an admin identity of a test server: its wallet signs
// attested admin requests (opcode "admin").
type testAdmin struct {
	*admintest.Admin
}

// setupAdmin reads the printed bootstrap credential and, on a first
// start, spends it on an owner and mints the owner's session (ts.cred).
func (ts *testServer) setupAdmin(t *testing.T) {
	t.Helper()
	ts.bootstrap = parseCredential(ts.out.String())
	if ts.bootstrap != "" {
		ts.owner = ts.bootstrapOwner(t)
		ts.cred = ts.owner.session(t, ts, "")
	}
}

// bootstrapOwner spends the server's printed bootstrap credential on a
// fresh owner wallet (POST /v1/admin/bootstrap) and returns it.
func (ts *testServer) bootstrapOwner(t *testing.T) *testAdmin {
	t.Helper()
	w, err := identity.GenerateWallet("owner")
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"did":%q}`, w.DID().String())
	var got struct{ DID, Role string }
	if st := decode(t, ts.do(t, "POST", "/v1/admin/bootstrap", ts.bootstrap, body), &got); st != http.StatusCreated || got.Role != admin.RoleOwner {
		t.Fatalf("bootstrap: %d %+v", st, got)
	}
	return &testAdmin{admintest.SignerFor(t, w, admin.RoleOwner)}
}

// newAdmin makes another admin identity with role, put by the owner
// through PUT /v1/admin/identities/{did}.
func (ts *testServer) newAdmin(t *testing.T, role string) *testAdmin {
	t.Helper()
	w, err := identity.GenerateWallet("admin-" + role)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"role":%q}`, role)
	if st := decode(t, ts.signed(t, ts.owner, "PUT", "/v1/admin/identities/"+w.DID().String(), body), nil); st != http.StatusOK {
		t.Fatalf("put admin identity %s: %d", role, st)
	}
	return &testAdmin{admintest.SignerFor(t, w, role)}
}

// signed sends an admin request attested by a to the in-process handler.
func (ts *testServer) signed(t *testing.T, a *testAdmin, method, path string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://talos.test"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := a.Sign(req); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

// session mints an admin session of a (POST /v1/admin/sessions, attested)
// with role ("" for a's own) and returns its token.
func (a *testAdmin) session(t *testing.T, ts *testServer, role string) string {
	t.Helper()
	body := []byte(`{"ttl_seconds":28800}`)
	if role != "" {
		body = fmt.Appendf(nil, `{"ttl_seconds":28800,"role":%q}`, role)
	}
	var got admin.SessionResponse
	resp := ts.signed(t, a, "POST", "/v1/admin/sessions", body)
	if st := decode(t, resp, &got); st != http.StatusCreated {
		raw, _ := json.Marshal(got)
		t.Fatalf("session: %d %s", st, raw)
	}
	return got.Token
}
