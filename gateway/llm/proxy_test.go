package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// fakeUpstream is an OpenAI-compatible server on loopback recording what it
// receives. It reports usage total tokens, or answers with status fail.
type fakeUpstream struct {
	srv    *httptest.Server
	usage  atomic.Int64 // reported total tokens; <0: no usage member
	fail   atomic.Int64
	sleep  atomic.Int64
	mu     sync.Mutex
	bodies [][]byte
	keys   []string
}

func newUpstream(t testing.TB) *fakeUpstream {
	u := &fakeUpstream{}
	u.usage.Store(100)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies, u.keys = append(u.bodies, b), append(u.keys, r.Header.Get("Authorization"))
		u.mu.Unlock()
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		if d := u.sleep.Load(); d > 0 {
			select {
			case <-time.After(time.Duration(d)):
			case <-r.Context().Done():
				return
			}
		}
		if st := u.fail.Load(); st != 0 {
			w.WriteHeader(int(st))
			io.WriteString(w, `{"error":{"message":"upstream says no"}}`)
			return
		}
		var req struct {
			Model string `json:"model"`
		}
		json.Unmarshal(b, &req)
		if n := u.usage.Load(); n >= 0 {
			fmt.Fprintf(w, `{"model":%q,"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":%d,"total_tokens":%d}}`, req.Model, n, n)
		} else {
			fmt.Fprintf(w, `{"model":%q,"choices":[]}`, req.Model)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fakeUpstream) received() ([][]byte, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([][]byte(nil), u.bodies...), append([]string(nil), u.keys...)
}

type fixture struct {
	t       testing.TB
	root    *identity.Wallet
	log     *audit.Log
	budgets *budget.MemBudget
	routes  *talos.RouteTable
	srv     *httptest.Server
	up      *fakeUpstream
	proxy   *Proxy
	scopes  map[string]budget.Scope
}

func newFixture(t testing.TB, opts ...func(*Config)) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{t: t, up: newUpstream(t), scopes: map[string]budget.Scope{}}
	var err error
	f.root, _ = identity.GenerateWallet("root")
	logKey, _ := identity.GenerateWallet("log")
	ns, _ := audit.NewNoteSigner("talos.test/log", logKey.Signer())
	nv, _ := audit.NewVerifier("talos.test/log", logKey.PublicKey())
	if f.log, err = audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: nv}); err != nil {
		t.Fatal(err)
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{
		SurfaceID: {"decision_reason", "cost_micros", "error_code", MetaUpstream, MetaStreamEnd}}})
	if f.budgets, err = budget.NewMemBudget(budget.MemBudgetConfig{}); err != nil {
		t.Fatal(err)
	}
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{f.root.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	limits, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: RateSurface, Limit: budget.PerSecond(1_000_000)},
		map[string]budget.Limit{RateSurface: budget.PerSecond(1_000_000)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := talos.NewKernel(talos.KernelConfig{Authorizer: v, Limits: limits, Budget: f.budgets, Audit: f.log, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Kernel: k, Upstream: f.up.srv.URL + "/v1", APIKey: "sk-test-upstream",
		PricePer1K: 10_000, // 10 micro-USD per token
		Timeout:    300 * time.Millisecond,
		Team:       func(context.Context, identity.DID) (string, bool) { return "team-x", true },
		Authorizer: v,
		Budget: func(_ context.Context, p identity.DID, team string, amount int64) *budget.ReserveRequest {
			s, ok := f.scopes["key:"+p.String()]
			if !ok {
				return nil
			}
			return &budget.ReserveRequest{Scopes: []budget.Scope{s}, Group: "team:" + team, Amount: amount,
				Meta: budget.Meta{KeyID: p.String(), TeamID: team, Surface: "llm"}}
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.proxy = p
	// The benchmark sends from one principal: lift its nonce quota.
	nonces, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 1 << 22, MaxPerPrincipal: 1 << 22, Rate: 1e9, Burst: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	if f.routes, err = talos.NewRouteTable([]talos.Route{Route(), ModelsRoute()}); err != nil {
		t.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: f.routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: nonces}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, att.Wrap(p.Handler()))
	mux.Handle(ModelsPattern, att.Wrap(p.ModelsHandler()))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// agent is an attested client with a token for models.
type agent struct {
	f      *fixture
	did    identity.DID
	client *http.Client
}

func (f *fixture) agent(models ...string) *agent {
	return f.agentGrants(capability.Grant{Tool: Tool, Actions: models})
}

// agentGrants is an attested client with a token for grants.
func (f *fixture) agentGrants(grants ...capability.Grant) *agent {
	w, _ := identity.GenerateWallet("agent")
	tok, err := capability.Issue(f.root.Signer(), w.DID(), grants, time.Now().Add(time.Hour), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	return &agent{f: f, did: w.DID(), client: &http.Client{Transport: &identity.AttestingTransport{Signer: s, Routes: f.routes,
		Header: http.Header{talos.HeaderCapability: {tok.Encode()}}}}}
}

type errBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable *bool  `json:"retryable"`
}

// chat posts body and returns the response (its body read) and, for a
// refusal, the contract error body.
func (a *agent) chat(body string) (*http.Response, []byte, errBody) {
	a.f.t.Helper()
	resp, err := a.client.Post(a.f.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		a.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb errBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &eb); err != nil || resp.StatusCode != contracts.HTTPStatus(contracts.Code(eb.Code)) {
			a.f.t.Fatalf("refusal is not the contract error body: %d %s", resp.StatusCode, raw)
		}
	}
	return resp, raw, eb
}

func (a *agent) spent() (spent, reserved int64) {
	u, err := a.f.budgets.Usage(a.f.t.Context(), "team:team-x", a.f.scopes["key:"+a.did.String()])
	if err != nil {
		a.f.t.Fatal(err)
	}
	return u.Spent, u.Reserved
}

func (f *fixture) hardBudget(a *agent, limit int64, mode budget.Mode) {
	id := "key:" + a.did.String()
	f.scopes[id] = budget.Scope{ID: id, Limit: limit, Mode: mode}
}

func TestProxy(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("small-model")
	f.hardBudget(alice, 50_000, budget.ModeHard) // $0.05 = 5000 tokens
	body := `{"model":"small-model","max_tokens":200,"messages":[{"role":"user","content":"hello"}],"temperature":0.5}`
	resp, raw, _ := alice.chat(body)
	if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"model":"small-model"`)) {
		t.Fatalf("chat: %d %s", resp.StatusCode, raw)
	}
	bodies, keys := f.up.received()
	if len(bodies) != 1 || string(bodies[0]) != body || keys[0] != "Bearer sk-test-upstream" {
		t.Fatalf("upstream got %q with %q", bodies, keys)
	}
	// Settled by reported usage (100 tokens = 1000 micro-USD).
	if s, r := alice.spent(); s != 1000 || r != 0 {
		t.Fatalf("after one call: spent %d reserved %d", s, r)
	}
	// Refused before the upstream: a model outside the grants, a
	// reservation larger than what is left, case-folded duplicates.
	for _, c := range []struct{ body, code string }{
		{`{"model":"big-model","messages":[]}`, string(contracts.CodeDenied)},
		{`{"model":"small-model","max_tokens":5000,"messages":[]}`, string(contracts.CodeBudgetExceeded)},
		{`{"model":"small-model","max_tokens":5,"Max_Tokens":100000}`, string(contracts.CodeInvalidInput)},
		{`{"model":"small-model","max_tokens":5,"max_completion_tokens":9}`, string(contracts.CodeInvalidInput)},
		{`{"model":"small-model","max_tokens":5,"n":17}`, string(contracts.CodeInvalidInput)},
		{`{"Model":"small-model","max_tokens":5}`, string(contracts.CodeInvalidInput)},
	} {
		_, _, eb := alice.chat(c.body)
		if eb.Code != c.code {
			t.Fatalf("%s: %+v, want %s", c.body, eb, c.code)
		}
		if c.code == string(contracts.CodeBudgetExceeded) && (eb.Retryable == nil || !*eb.Retryable) {
			t.Fatalf("over budget is not retryable: %+v", eb)
		}
	}
	// Under a hard budget max_tokens is required.
	if _, _, eb := alice.chat(`{"model":"small-model","messages":[]}`); eb.Code != string(contracts.CodeInvalidInput) {
		t.Fatalf("no max_tokens under a hard budget: %+v", eb)
	}
	if got, _ := f.up.received(); len(got) != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", len(got))
	}
	// Upstream failures map to contract codes and charge nothing; no
	// error names the upstream or its key.
	f.up.fail.Store(503)
	if _, raw, eb := alice.chat(body); eb.Code != string(contracts.CodeUpstream5xx) || bytes.Contains(raw, []byte("sk-test")) || bytes.Contains(raw, []byte("127.0.0.1")) {
		t.Fatalf("upstream 503: %s", raw)
	}
	f.up.fail.Store(0)
	f.up.sleep.Store(int64(2 * time.Second))
	if _, _, eb := alice.chat(body); eb.Code != string(contracts.CodeUpstreamTimeout) {
		t.Fatalf("upstream timeout: %+v", eb)
	}
	f.up.sleep.Store(0)
	if s, r := alice.spent(); s != 1000 || r != 0 {
		t.Fatalf("failed calls were charged: spent %d reserved %d", s, r)
	}
	// An upstream 4xx is mapped to the contract error body (the upstream's
	// text never reaches the caller), charged nothing.
	f.up.fail.Store(400)
	if _, raw, eb := alice.chat(body); eb.Code != string(contracts.CodeInvalidInput) || bytes.Contains(raw, []byte("upstream says no")) {
		t.Fatalf("upstream 400: %s", raw)
	}
	f.up.fail.Store(0)
	if s, r := alice.spent(); s != 1000 || r != 0 {
		t.Fatalf("refused calls were charged: spent %d reserved %d", s, r)
	}
	// A warn-mode budget lets an over-budget call through, flagged.
	f.hardBudget(alice, 1000, budget.ModeWarn)
	if resp, _, _ := alice.chat(body); resp.StatusCode != 200 || resp.Header.Get(HeaderBudgetWarning) != "exceeded" {
		t.Fatalf("warn-mode call: %d %q", resp.StatusCode, resp.Header.Get(HeaderBudgetWarning))
	}
}

// TestHardBudgetSettleBounded: under a hard budget an upstream reporting
// more usage than the request could generate is charged the reservation
// (one token per request byte plus max_tokens), never more; without usage
// a success is charged the worst case.
func TestHardBudgetSettleBounded(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	body := `{"model":"m","max_tokens":10,"n":2,"messages":[]}`
	worst := (int64(len(body)) + 2*10) * 10 // micro-USD at 10 per token
	f.up.usage.Store(400_000)               // absurd usage
	if resp, raw, _ := alice.chat(body); resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, raw)
	}
	if s, _ := alice.spent(); s != worst {
		t.Fatalf("charged %d, want the reservation %d", s, worst)
	}
	f.up.usage.Store(-1)
	alice.chat(body)
	if s, _ := alice.spent(); s != 2*worst {
		t.Fatalf("a success without usage charged %d in all, want %d", s, 2*worst)
	}
}

func TestUnattestedAndUnknownPrincipal(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Team = func(context.Context, identity.DID) (string, bool) { return "", false }
	})
	resp, err := http.Post(f.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unattested: %d", resp.StatusCode)
	}
	if _, _, eb := f.agent("m").chat(`{"model":"m","max_tokens":1}`); eb.Code != string(contracts.CodeAuthInvalid) {
		t.Fatalf("unknown principal: %+v", eb)
	}
	if got, _ := f.up.received(); len(got) != 0 {
		t.Fatal("a refused request reached the upstream")
	}
}

func TestNewChecksConfig(t *testing.T) {
	k := &talos.Kernel{}
	for name, cfg := range map[string]Config{
		"no kernel":      {Upstream: "http://127.0.0.1:1/v1"},
		"no upstream":    {Kernel: k},
		"ftp upstream":   {Kernel: k, Upstream: "ftp://x/v1"},
		"negative price": {Kernel: k, Upstream: "http://x/v1", PricePer1K: -1},
	} {
		if _, err := New(cfg); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: %v", name, err)
		}
	}
}
