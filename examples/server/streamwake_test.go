package main

import (
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	auditpg "github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/internal/testenv"
)

// TestAuditStreamWakesOnLocalAppend: with the stream's poll an hour
// apart, only the wake-up of a local append can deliver an event, so a
// decision of this replica showing up on the stream proves the append
// woke it. Run over the file store and, when PostgreSQL is configured,
// over the shared store (whose audit.Querier the Log still uses).
func TestAuditStreamWakesOnLocalAppend(t *testing.T) {
	t.Run("file", func(t *testing.T) { testStreamWake(t, testConfig(t), false) })
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresURL(t)
		cfg := testConfig(t)
		cfg.PostgresURL = dsn
		cfg.tablePrefix = testenv.Unique(t) + "_"
		dropTablesAtEnd(t, dsn, cfg.tablePrefix)
		testStreamWake(t, cfg, true)
	})
}

func testStreamWake(t *testing.T, cfg Config, postgres bool) {
	cfg.streamPoll = time.Hour
	ts := newTestServer(t, cfg)
	if _, isPG := ts.core.logStore.(*auditpg.Store); isPG != postgres {
		t.Fatalf("audit store %T", ts.core.logStore)
	}
	// The Log appends through the waker, keeping the store's Querier.
	if _, q := ts.core.logAppends.store().(audit.Querier); q != postgres {
		t.Fatalf("the waking store's Querier: %v, the store's: %v", q, postgres)
	}
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	auditor := ts.newAdmin(t, admin.RoleAuditor).session(t, ts, "")

	resp, rd := openStream(t, ts, auditor, "?surface="+opAuthorize, "")
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	// Not a timing assertion: a bound so that a stream nothing wakes
	// fails the test instead of hanging it.
	stop := time.AfterFunc(time.Minute, func() { resp.Body.Close() })
	defer stop.Stop()
	for _, action := range []string{"read", "write"} {
		alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: action}, nil)
		ev := nextEvent(t, rd)
		want := map[string]string{"read": "success", "write": "denied"}[action]
		if ev.Event.SurfaceID != opAuthorize || ev.Event.Principal.PrincipalID != alice.did || ev.Event.Outcome != want {
			t.Fatalf("%s: event %+v, want %s", action, ev, want)
		}
	}
}
