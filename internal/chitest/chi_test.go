package chitest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// chiPattern is the documented adapter: the route template chi matched.
func chiPattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

func wallet(t *testing.T, b byte) *identity.Wallet {
	seed := make([]byte, 32)
	seed[0] = b
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestChiRouter protects chi routes with the talos middleware through
// AttesterConfig.RoutePattern: allowed, denied by scope, unattested, a
// route chi serves that the table does not list, a public route, and a
// middleware mounted before routing (which sees no route and denies).
func TestChiRouter(t *testing.T) {
	root, agent := wallet(t, 1), wallet(t, 2)
	routes, err := talos.NewRouteTable([]talos.Route{
		{Pattern: "POST /tools/{id}/run", Tool: "tools", Action: "run"},
		{Pattern: "GET /tools/{name}", Tool: "tools", Action: "read"},
	})
	if err != nil {
		t.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{
		Routes:       routes,
		Attestation:  identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(0)},
		RoutePattern: chiPattern,
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{root.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	mw, err := talos.NewMiddleware(talos.MiddlewareConfig{Attester: att, Authorizer: v})
	if err != nil {
		t.Fatal(err)
	}
	echo := func(w http.ResponseWriter, r *http.Request) {
		d, _ := talos.DecisionFrom(r.Context())
		w.Write([]byte(chi.URLParam(r, "id") + chi.URLParam(r, "name") + " " + d.Action))
	}
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	r.Group(func(r chi.Router) {
		r.Use(mw.Wrap) // inside a group: runs after routing
		r.Post("/tools/{id}/run", echo)
		r.Get("/tools/{name}", echo)
		r.Post("/tools/admin/run", echo) // protected by the middleware but not in the table
	})
	early := chi.NewRouter()
	early.Use(mw.Wrap) // before routing: no route pattern yet
	early.Post("/tools/{id}/run", echo)

	tok, err := capability.Issue(root.Signer(), agent.DID(), []capability.Grant{{Tool: "tools", Actions: []string{"read"}}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: agent.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h                    http.Handler
		method, path, opcode string
		status               int
		body                 string
	}{
		{r, "GET", "/health", "", 200, "ok"},
		{r, "GET", "/tools/grep", "tools.read", 200, "grep read"},
		{r, "GET", "/tools/grep", "", 401, ""},
		{r, "POST", "/tools/grep/run", "tools.run", 403, ""},
		{r, "POST", "/tools/grep/run", "tools.read", 401, ""}, // signed for another route
		{r, "POST", "/tools/admin/run", "tools.run", 404, ""},
		{early, "POST", "/tools/grep/run", "tools.run", 404, ""},
	} {
		var body []byte
		if tc.method == "POST" {
			body = []byte(`{}`)
		}
		req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(body))
		req.Header.Set(talos.HeaderCapability, tok.Encode())
		if tc.opcode != "" {
			if err := signer.Sign(req, tc.opcode); err != nil {
				t.Fatal(err)
			}
		}
		w := httptest.NewRecorder()
		tc.h.ServeHTTP(w, req)
		if w.Code != tc.status || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s %s (%s): %d %s, want %d %s", tc.method, tc.path, tc.opcode, w.Code, w.Body, tc.status, tc.body)
		}
	}
}
