package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/identity"
)

// FuzzAdminRoutes sends arbitrary bodies to every admin route that reads
// one: the handler never answers 5xx, every refusal is a contract error
// body with the status of its code, and a refused request stores nothing.
func FuzzAdminRoutes(f *testing.F) {
	seeds := []string{
		`{"team_id":"a"}`, `{"permissions":["files:read"]}`,
		`{"principal_id":"p","role_id":"r","scope":{"scope_type":"global","attributes":{}}}`,
		`{"limit_usd":"1","mode":"hard","period":"daily"}`, `{"subject":"did:key:z6Mk","grants":[],"expires_in_seconds":1}`,
		`{"capability_hash":"00","nonce":"n"}`, `{"chain":""}`, `{"team_id":"a","TEAM_ID":"b"}`, `{"a":1e400}`, "\xff", ``,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		fx := newFixture(t, fileStore(t), nil)
		agent, _ := identity.GenerateWallet("a")
		routes := [][2]string{
			{"PUT", "/v1/principals/" + agent.DID().String()},
			{"PUT", "/v1/rbac/roles/r"},
			{"PUT", "/v1/rbac/bindings/b"},
			{"PUT", "/v1/budgets/team:t"},
			{"POST", "/v1/capabilities"},
			{"POST", "/v1/capabilities/revocations"},
			{"POST", "/v1/capabilities/delegations"},
		}
		rt := routes[int(route)%len(routes)]
		before, _ := fx.store.All(t.Context())
		mux := http.NewServeMux()
		fx.admin.Register(mux)
		req := httptest.NewRequest(rt[0], rt[1], strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+fx.session)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", rt[0], rt[1], w.Code, w.Body.Bytes())
		}
		if w.Code < 300 {
			return
		}
		var eb struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Code == "" || contracts.HTTPStatus(contracts.Code(eb.Code)) != w.Code {
			t.Fatalf("%s %s: refusal %d %q is not a contract error body", rt[0], rt[1], w.Code, w.Body.Bytes())
		}
		if all, _ := fx.store.All(t.Context()); len(all) != len(before) {
			t.Fatalf("%s %s: a refused request stored %d documents", rt[0], rt[1], len(all)-len(before))
		}
	})
}

// FuzzRecoveryFile: CheckRecoveryFile never panics, refuses everything
// but a file MACed with the key with one AUTH_INVALID error, and accepts
// the file it was given only if it is byte-for-byte one the writer makes.
func FuzzRecoveryFile(f *testing.F) {
	master := make([]byte, 32)
	key, _ := admin.RecoveryKey(master)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cred := admin.BootstrapPrefix + "AAAA"
	good, _ := admin.MarshalRecoveryFile(master, cred, now)
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"credential_sha256":"","created_at":"","mac":""}`))
	f.Add(append(good[:len(good)-1:len(good)-1], ' '))
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := admin.CheckRecoveryFile(raw, key, cred, now.Add(time.Minute))
		if err == nil {
			var rf admin.RecoveryFile
			if e := json.Unmarshal(raw, &rf); e != nil {
				t.Fatalf("accepted a file that is not JSON: %q", raw)
			}
			created, _ := time.Parse(time.RFC3339, rf.CreatedAt)
			again, _ := admin.MarshalRecoveryFile(master, cred, created)
			var a2 admin.RecoveryFile
			json.Unmarshal(again, &a2)
			if a2 != rf {
				t.Fatalf("accepted %q, the writer makes %q", raw, again)
			}
			return
		}
		if contracts.CodeOf(err) != contracts.CodeAuthInvalid {
			t.Fatalf("refusal %v is not AUTH_INVALID", err)
		}
	})
}

// FuzzListQuery: any query string on a list route is answered 200 with a
// list body or 400 TALOS_INVALID_INPUT, never 5xx.
func FuzzListQuery(f *testing.F) {
	for _, q := range []string{"limit=1", "limit=500&cursor=", "cursor=azEuYQ", "limit=0", "limit=1&limit=2", "cursor=%ff", "team=a&x=1", "revoked=true"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		fx := newFixture(t, fileStore(t), nil)
		mux := http.NewServeMux()
		fx.admin.Register(mux)
		for _, p := range []string{"/v1/principals", "/v1/capabilities", "/v1/admin/identities", "/v1/budgets"} {
			req, err := http.NewRequest("GET", p+"?"+q, nil)
			if err != nil {
				return
			}
			req.Header.Set("Authorization", "Bearer "+fx.session)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			var eb struct{ Code string }
			json.Unmarshal(w.Body.Bytes(), &eb)
			switch {
			case w.Code == 200 && strings.HasPrefix(w.Body.String(), `{"items":[`):
			case w.Code == 400 && eb.Code == string(contracts.CodeInvalidInput):
			default:
				t.Fatalf("GET %s?%s: %d %s", p, q, w.Code, w.Body.Bytes())
			}
		}
	})
}
