package a2a

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestAuditDeliveries: one audit event per delivery outcome (delivered,
// receiver error, unreachable, refused by the address policy), the
// server as principal, the destination's host but never its path, query,
// token or credentials.
func TestAuditDeliveries(t *testing.T) {
	ctx := context.Background()
	key, _ := identity.GenerateWallet("log")
	ns, _ := audit.NewNoteSigner("talos.test/log", key.Signer())
	nv, _ := audit.NewVerifier("talos.test/log", key.PublicKey())
	log, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: nv})
	if err != nil {
		t.Fatal(err)
	}
	events, err := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: map[string][]string{PushDestinationOp: PushAuditMeta}})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := identity.GenerateWallet("server")
	var failed []error
	on := AuditDeliveries(DeliveryAudit{Log: log, Events: events, Server: srv.DID(), OnError: func(err error) { failed = append(failed, err) }})
	c := PushConfig{ID: "c1", TaskID: "t1", URL: "https://hooks.example:8443/in?sig=SECRETQ", Token: "SECRETTOKEN",
		Authentication: &PushAuthConfig{Scheme: "Bearer", Credentials: "SECRETCRED"}}
	cases := []struct {
		status  int
		err     error
		want    int
		outcome string
	}{
		{204, nil, 204, audit.OutcomeSuccess},
		{503, nil, 502, audit.OutcomeFailure},
		{0, contracts.New(contracts.CodeTransportError, "refused"), 502, audit.OutcomeFailure},
		{0, contracts.New(contracts.CodePolicyDenied, "loopback"), 403, audit.OutcomeFailure},
	}
	for _, tc := range cases {
		on(c, "t1", tc.status, tc.err)
	}
	if len(failed) != 0 {
		t.Fatal(failed)
	}
	cp, err := log.Checkpoint(ctx)
	if err != nil || cp.Size != uint64(len(cases)) {
		t.Fatalf("%d events, %v (want %d)", cp.Size, err, len(cases))
	}
	for i, tc := range cases {
		raw, err := log.Entry(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"SECRET", "/in", "sig="} {
			if strings.Contains(string(raw), secret) {
				t.Fatalf("event %d records %q: %s", i, secret, raw)
			}
		}
		var ev audit.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.SurfaceID != PushDestinationOp || ev.HTTP.StatusCode != tc.want || ev.Outcome != tc.outcome ||
			ev.Principal.PrincipalID != srv.DID().String() || ev.Meta["destination_host"] != "hooks.example:8443" || ev.Meta["task_id"] != "t1" {
			t.Fatalf("event %d: %s", i, raw)
		}
	}
}
