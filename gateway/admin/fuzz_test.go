package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
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
