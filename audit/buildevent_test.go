package audit_test

import (
	"bytes"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
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

// TestDraft: a drafted event appended to a Log is the event Build seals,
// byte for byte, and the Log refuses a drafted event that breaks the
// schema with the error Build would have given.
func TestDraft(t *testing.T) {
	b, err := audit.NewEventBuilder(audit.BuilderConfig{
		IPHashKey: []byte("k"), IPHashKeyID: "k1",
		MetaAllowlist: map[string][]string{"jobs.run": {"job"}},
		NewID:         func() string { return "0190a0a0-0000-7000-8000-000000000001" },
	})
	if err != nil {
		t.Fatal(err)
	}
	d := audit.Decision{RequestID: "req-1", SurfaceID: "jobs.run", TemplatePath: "/jobs/{id}", Status: 200,
		Principal: audit.AnonymousPrincipal(), Meta: map[string]any{"job": "nightly", "secret": "x"},
		Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	r := httptest.NewRequest("POST", "/jobs/7", nil)
	r.RemoteAddr = "192.0.2.7:4000"
	built, err := b.Build(r, d)
	if err != nil {
		t.Fatal(err)
	}
	drafted, err := b.Draft(r, d)
	if err != nil || drafted.EventHash != "" {
		t.Fatalf("draft %+v, %v: want no event hash yet", drafted, err)
	}
	l := audittest.NewLog(t, audit.NewMemStore())
	rc, err := l.Append(t.Context(), drafted)
	if err != nil {
		t.Fatal(err)
	}
	if rc.EventHash != built.EventHash {
		t.Fatalf("appended draft has event hash %s, Build sealed %s", rc.EventHash, built.EventHash)
	}
	stored, err := l.Entry(t.Context(), rc.Index)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := built.MarshalCanonical()
	if err != nil || !bytes.Equal(stored, sealed) {
		t.Fatalf("stored %s\nBuild sealed %s (%v)", stored, sealed, err)
	}
	if ev := b.DraftEvent("POST", netip.MustParseAddr("192.0.2.7"), d); ev.HTTP != built.HTTP || ev.EventHash != "" {
		t.Fatalf("DraftEvent %+v, Build %+v", ev.HTTP, built.HTTP)
	}
	if _, err := b.Draft(nil, d); err == nil {
		t.Fatal("Draft without a request")
	}
	d.TemplatePath = ""
	_, berr := b.BuildEvent("POST", netip.Addr{}, d)
	_, aerr := l.Append(t.Context(), b.DraftEvent("POST", netip.Addr{}, d))
	if berr == nil || aerr == nil || berr.Error() != aerr.Error() {
		t.Fatalf("invalid draft: Build said %v, Append said %v", berr, aerr)
	}
	if n, _ := l.Size(t.Context()); n != 1 {
		t.Fatalf("log size %d: the invalid draft was appended", n)
	}
}
