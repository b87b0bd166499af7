package a2a

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// relayFixture serves a Relay as a server mounts it: behind a Kernel
// middleware over an Attester with RelayTalosRoutes, one audit event per
// request.
type relayFixture struct {
	srv *httptest.Server
	log *audit.Log
}

func newRelayFixture(t *testing.T) *relayFixture {
	t.Helper()
	ctx := context.Background()
	issuer, _ := identity.GenerateWallet("issuer") // relay routes are AttestOnly: no capability is checked
	v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{issuer.DID()}, Revocations: capability.NewMemRevocationStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	key, _ := identity.GenerateWallet("log")
	ns, _ := audit.NewNoteSigner("talos.test/log", key.Signer())
	nv, _ := audit.NewVerifier("talos.test/log", key.PublicKey())
	log, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: nv})
	if err != nil {
		t.Fatal(err)
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	lim, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: "a2a", Limit: budget.PerSecond(1000)},
		map[string]budget.Limit{"a2a": budget.PerSecond(1000)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := talos.NewKernel(talos.KernelConfig{Authorizer: v, Audit: log, Events: events, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := talos.NewRouteTable(RelayTalosRoutes())
	if err != nil {
		t.Fatal(err)
	}
	att, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 16)}})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := k.Middleware(talos.KernelMiddlewareConfig{Attester: att, Prepare: func(_ *http.Request, call *talos.Call) {
		call.SurfaceID, call.RateSurface, call.Team = "a2a", "a2a", "team"
	}})
	if err != nil {
		t.Fatal(err)
	}
	relay, err := NewRelay(RelayConfig{Store: NewMemStore(), Wrap: mw.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	relay.Mount(mux)
	f := &relayFixture{srv: httptest.NewServer(mux), log: log}
	t.Cleanup(f.srv.Close)
	return f
}

// do sends one request attested by w with the route's opcode.
func (f *relayFixture) do(t *testing.T, w *identity.Wallet, method, path, opcode string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err := s.Sign(req, opcode); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func blob(s string) (string, string) {
	sum := sha256.Sum256([]byte(s))
	return contracts.EncodeBase64URL([]byte(s)), hex.EncodeToString(sum[:])
}

// TestRelayHandlers: the relay mounted as a gateway mounts it. A session
// is created, accepted by its responder only, invisible to a third agent,
// closed; its events chain; a group is created and changed by its owner
// only; a bad body is refused; every request is one audit event.
func TestRelayHandlers(t *testing.T) {
	f := newRelayFixture(t)
	alice, _ := identity.GenerateWallet("alice")
	bob, _ := identity.GenerateWallet("bob")
	eve, _ := identity.GenerateWallet("eve")
	b64, digest := blob("sealed-state-0")
	var s struct {
		SessionID string `json:"session_id"`
		State     string `json:"state"`
		Blob      string `json:"ratchet_state_blob_b64u"`
	}
	if st := f.do(t, alice, "POST", "/a2a/sessions", "a2a.session.create", map[string]any{"schema_id": "talos.a2a.session_create_request",
		"schema_version": "v1", "responder_id": bob.DID().String(), "ratchet_state_blob_b64u": b64, "ratchet_state_digest": digest}, &s); st != 201 || s.State != "pending" || s.Blob != b64 {
		t.Fatalf("create: %d %+v", st, s)
	}
	base := "/a2a/sessions/" + s.SessionID
	b64b, digestB := blob("sealed-state-1")
	accept := map[string]any{"schema_id": "talos.a2a.session_accept_request", "schema_version": "v1", "ratchet_state_blob_b64u": b64b, "ratchet_state_digest": digestB}
	var e struct {
		Code string `json:"code"`
	}
	if st := f.do(t, alice, "POST", base+"/accept", "a2a.session.accept", accept, &e); st != 403 || e.Code != string(contracts.CodeDenied) {
		t.Fatalf("initiator accepting: %d %+v", st, e)
	}
	if st := f.do(t, eve, "GET", base, "a2a.session.get", nil, &e); st != 404 || e.Code != string(contracts.CodeNotFound) {
		t.Fatalf("outsider reading: %d %+v", st, e)
	}
	if st := f.do(t, bob, "POST", base+"/accept", "a2a.session.accept", accept, &s); st != 200 || s.State != "active" {
		t.Fatalf("accept: %d %+v", st, s)
	}
	if st := f.do(t, bob, "DELETE", base, "a2a.session.close", nil, &s); st != 200 || s.State != "closed" {
		t.Fatalf("close: %d %+v", st, s)
	}
	var evs struct {
		Events []map[string]any `json:"events"`
	}
	if st := f.do(t, alice, "GET", base+"/events", "a2a.session.events", nil, &evs); st != 200 || len(evs.Events) != 3 {
		t.Fatalf("events: %d %d", st, len(evs.Events))
	}
	for i := 1; i < len(evs.Events); i++ {
		if evs.Events[i]["previous_digest"] != evs.Events[i-1]["event_digest"] {
			t.Fatalf("event %d does not chain: %v", i, evs.Events[i])
		}
	}
	var g struct {
		GroupID string   `json:"group_id"`
		Members []string `json:"members"`
	}
	if st := f.do(t, alice, "POST", "/a2a/groups", "a2a.group.create", map[string]any{"schema_id": "talos.a2a.group_create_request", "schema_version": "v1"}, &g); st != 201 {
		t.Fatalf("group: %d", st)
	}
	add := map[string]any{"schema_id": "talos.a2a.group_member_add_request", "schema_version": "v1", "member_id": bob.DID().String()}
	if st := f.do(t, alice, "POST", "/a2a/groups/"+g.GroupID+"/members", "a2a.group.member.add", add, &g); st != 200 || len(g.Members) != 2 {
		t.Fatalf("add member: %d %+v", st, g)
	}
	if st := f.do(t, bob, "DELETE", "/a2a/groups/"+g.GroupID, "a2a.group.close", nil, &e); st != 403 {
		t.Fatalf("member closing the group: %d %+v", st, e)
	}
	if st := f.do(t, alice, "POST", "/a2a/groups", "a2a.group.create", map[string]any{"schema_id": "talos.a2a.group_create_request", "schema_version": "v1", "Schema_ID": "x"}, &e); st != 400 || e.Code != string(contracts.CodeInvalidInput) {
		t.Fatalf("case-folded keys: %d %+v", st, e)
	}
	cp, err := f.log.Checkpoint(context.Background())
	if err != nil || cp.Size != 10 {
		t.Fatalf("audit events: %d %v (want one per request, 10)", cp.Size, err)
	}
}
