package llm

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// list gets /v1/models and returns the status, the model ids and, for a
// refusal, the contract error body.
func (a *agent) list() (int, []string, errBody) {
	a.f.t.Helper()
	resp, err := a.client.Get(a.f.srv.URL + "/v1/models")
	if err != nil {
		a.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb errBody
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(raw, &eb); err != nil || resp.StatusCode != contracts.HTTPStatus(contracts.Code(eb.Code)) {
			a.f.t.Fatalf("refusal is not the contract error body: %d %s", resp.StatusCode, raw)
		}
		return resp.StatusCode, nil, eb
	}
	var l ModelList
	if err := json.Unmarshal(raw, &l); err != nil || l.Object != "list" {
		a.f.t.Fatalf("not a model list: %s", raw)
	}
	ids := []string{}
	for _, m := range l.Data {
		if m.Object != "model" || m.OwnedBy != "talos" {
			a.f.t.Fatalf("bad entry %+v", m)
		}
		ids = append(ids, m.ID)
	}
	return resp.StatusCode, ids, eb
}

// lastEvent returns the last audit event of the fixture's log.
func (f *fixture) lastEvent() *audit.Event {
	f.t.Helper()
	n, err := f.log.Size(f.t.Context())
	if err != nil || n == 0 {
		f.t.Fatalf("log size %d: %v", n, err)
	}
	raw, err := f.log.Entry(f.t.Context(), n-1)
	if err != nil {
		f.t.Fatal(err)
	}
	e, err := audit.ParseEvent(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// TestModelsConfigured: GET /v1/models lists only the configured models
// the caller's grants allow, audited once per request; chat completions
// for a model that is not served are refused.
func TestModelsConfigured(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Models = []string{"gpt-c", "gpt-a", "gpt-b", "gpt-a"} })
	alice := f.agent("gpt-a", "gpt-c", "not-served")
	before, _ := f.log.Size(t.Context())
	if st, ids, _ := alice.list(); st != 200 || !slices.Equal(ids, []string{"gpt-a", "gpt-c"}) {
		t.Fatalf("alice lists %d %v", st, ids)
	}
	after, _ := f.log.Size(t.Context())
	if after != before+1 {
		t.Fatalf("one listing appended %d audit events", after-before)
	}
	if e := f.lastEvent(); e.SurfaceID != ModelsSurfaceID || e.Outcome != audit.OutcomeSuccess {
		t.Fatalf("audit event %+v", e)
	}
	// A valid token granting no model: an empty list.
	bob := f.agentGrants(capability.Grant{Tool: "search", Actions: []string{"q"}})
	if st, ids, _ := bob.list(); st != 200 || len(ids) != 0 {
		t.Fatalf("bob lists %d %v", st, ids)
	}
	// A token that is not valid at all is refused, and audited as denied.
	w, _ := identity.GenerateWallet("mallory")
	other, _ := identity.GenerateWallet("other-root")
	tok, _ := capability.Issue(other.Signer(), w.DID(), []capability.Grant{{Tool: Tool, Actions: []string{"gpt-a"}}}, time.Now().Add(time.Hour), nil)
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	mallory := &agent{f: f, did: w.DID(), client: &http.Client{Transport: &identity.AttestingTransport{Signer: s, Routes: f.routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}}
	if st, _, eb := mallory.list(); st == 200 || eb.Code == "" {
		t.Fatalf("untrusted token lists: %d %+v", st, eb)
	}
	if e := f.lastEvent(); e.SurfaceID != ModelsSurfaceID || e.Outcome == audit.OutcomeSuccess {
		t.Fatalf("audit event of a refused listing %+v", e)
	}
	// Chat completions for a granted model that is not served.
	if _, _, eb := alice.chat(`{"model":"not-served","max_tokens":1}`); eb.Code != string(contracts.CodeModelNotAllowed) {
		t.Fatalf("unserved model: %+v", eb)
	}
}

// TestModelsFromUpstream: without configured models the listing asks the
// upstream and filters its answer by the grants; a malformed or failed
// upstream answer is a contract error without the upstream's text.
func TestModelsFromUpstream(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m1", "m3")
	answer := `{"object":"list","data":[{"id":"m2","owned_by":"org-SECRET"},{"id":"m1","owned_by":"org-SECRET"},{"id":"m3"},{"id":"m1"}]}`
	status := 200
	up.set(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method != "GET" || r.URL.Path != "/v1/models" || r.Header.Get("Authorization") != "Bearer sk-test-upstream" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	})
	if st, ids, _ := alice.list(); st != 200 || !slices.Equal(ids, []string{"m1", "m3"}) {
		t.Fatalf("alice lists %d %v", st, ids)
	}
	for _, c := range []struct {
		status int
		answer string
		code   string
	}{
		{200, `{"object":"list"}`, string(contracts.CodeUpstream5xx)},
		{200, `{"data":[{"id":"bad id"}]}`, string(contracts.CodeUpstream5xx)},
		{200, `{"data":[],"Data":[{"id":"m1"}]}`, string(contracts.CodeUpstream5xx)},
		{200, `[1]`, string(contracts.CodeUpstream5xx)},
		{500, `{"error":"org-SECRET"}`, string(contracts.CodeUpstream5xx)},
		{401, `{"error":"org-SECRET"}`, string(contracts.CodeUpstream5xx)},
	} {
		status, answer = c.status, c.answer
		if st, _, eb := alice.list(); eb.Code != c.code || st != contracts.HTTPStatus(contracts.Code(c.code)) {
			t.Fatalf("%d %s: %d %+v", c.status, c.answer, st, eb)
		}
		if e := f.lastEvent(); e.SurfaceID != ModelsSurfaceID || e.Outcome == audit.OutcomeSuccess {
			t.Fatalf("audit event of a failed listing %+v", e)
		}
	}
}

func TestModelsWithoutAuthorizer(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Authorizer = nil; c.Models = []string{"m"} })
	if st, _, eb := f.agent("m").list(); st != 500 || eb.Code != string(contracts.CodeInternal) {
		t.Fatalf("listing without an authorizer: %d %+v", st, eb)
	}
}
