package audit_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/talosgo/talos/audit"
)

// TestBuildEvent: an event for an action that did not come in over HTTP is
// the same contract event Build makes from the equivalent request, client
// IP hash included, and it validates.
func TestBuildEvent(t *testing.T) {
	b, err := audit.NewEventBuilder(audit.BuilderConfig{
		IPHashKey: []byte("k"), IPHashKeyID: "k1",
		MetaAllowlist: map[string][]string{"jobs.run": {"job"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := audit.Decision{RequestID: "req-1", SurfaceID: "jobs.run", TemplatePath: "/jobs/{id}", Status: 200,
		Principal: audit.AnonymousPrincipal(), Meta: map[string]any{"job": "nightly", "secret": "x"}}
	ev, err := b.BuildEvent("POST", netip.MustParseAddr("192.0.2.7"), d)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/jobs/7", nil)
	r.RemoteAddr = "192.0.2.7:4000"
	want, err := b.Build(r, d)
	if err != nil {
		t.Fatal(err)
	}
	if ev.HTTP != want.HTTP || ev.Outcome != "success" || ev.Meta["job"] != "nightly" || ev.Meta["secret"] != nil || ev.HTTP.ClientIPHash == "" {
		t.Fatalf("BuildEvent %+v, Build %+v", ev, want)
	}
	if _, err := audit.ParseEvent(mustMarshal(t, ev)); err != nil {
		t.Fatalf("event does not parse: %v", err)
	}
	// No client address, no method: no IP hash, GET.
	ev, err = b.BuildEvent("", netip.Addr{}, d)
	if err != nil || ev.HTTP.ClientIPHash != "" || ev.HTTP.Method != "GET" {
		t.Fatalf("%+v %v", ev.HTTP, err)
	}
	d.TemplatePath = ""
	if _, err := b.BuildEvent("POST", netip.Addr{}, d); err == nil {
		t.Fatal("an event without a template path was built")
	}
}
