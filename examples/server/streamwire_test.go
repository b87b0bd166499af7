package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/internal/testenv"
)

type streamEvent struct {
	ID    string
	Event struct {
		SurfaceID string `json:"surface_id"`
		Outcome   string `json:"outcome"`
		Principal struct {
			PrincipalID string `json:"principal_id"`
		} `json:"principal"`
	}
}

// openStream opens GET /v1/audit/stream on the serving ts.
func openStream(t *testing.T, ts *testServer, cred, query, lastID string) (*http.Response, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+"/v1/audit/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

// nextEvent reads the next audit event (pings skipped).
func nextEvent(t *testing.T, rd *bufio.Reader) streamEvent {
	t.Helper()
	var ev streamEvent
	var name string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name == "audit":
			return ev
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &ev.Event); err != nil {
				t.Fatalf("data: %v", err)
			}
		}
	}
}

// TestAuditStreamThroughServer: an auditor watches the Kernel's decisions
// live, filtered by surface, and resumes with Last-Event-ID without a gap
// or a duplicate; the stream ends when the server shuts down.
func TestAuditStreamThroughServer(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	auditor := ts.newAdmin(t, admin.RoleAuditor).session(t, ts, "")

	resp, rd := openStream(t, ts, auditor, "?surface="+opAuthorize, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	// The stream starts at the log size read before the headers were
	// sent: every event appended from now on is in it.
	authorizeAs := func(action string) {
		alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: action}, nil)
	}
	authorizeAs("read")
	authorizeAs("write")
	first, second := nextEvent(t, rd), nextEvent(t, rd)
	if first.Event.SurfaceID != opAuthorize || first.Event.Outcome != "success" || first.Event.Principal.PrincipalID != alice.did {
		t.Fatalf("first event %+v", first)
	}
	if second.Event.Outcome != "denied" {
		t.Fatalf("second event %+v", second)
	}
	resp.Body.Close()

	// Two more while nobody listens; resuming after the first event gives
	// the second, then the two new ones, once each.
	authorizeAs("read")
	authorizeAs("read")
	_, rd2 := openStream(t, ts, auditor, "?surface="+opAuthorize, first.ID)
	got := []string{nextEvent(t, rd2).ID, nextEvent(t, rd2).ID, nextEvent(t, rd2).ID}
	if got[0] != second.ID || got[1] == got[2] || got[1] == second.ID {
		t.Fatalf("resumed ids %v after %s, %s", got, first.ID, second.ID)
	}

	// Shutdown ends the open stream (the drain is not held up).
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, rd2); done <- err }()
	if err := ts.stop(t); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case <-done:
	case <-t.Context().Done():
		t.Fatal("the stream did not end at shutdown")
	}
}

// TestAuditStreamAccess: admin.audit read only (owner, operator, auditor);
// no credential 401; a bad cursor 400 before any streaming.
func TestAuditStreamAccess(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	for _, role := range []string{admin.RoleViewer} {
		cred := ts.newAdmin(t, role).session(t, ts, "")
		var eb errBody
		st := decode(t, ts.do(t, "GET", "/v1/audit/stream", cred, nil), &eb)
		expectErr(t, role, st, eb, "RBAC_DENIED")
	}
	var eb errBody
	st := decode(t, ts.do(t, "GET", "/v1/audit/stream", "", nil), &eb)
	expectErr(t, "no credential", st, eb, "AUTH_INVALID")
	unknown, _ := contracts.EncodeCursor(1, "01890000-0000-7000-8000-000000000001")
	for _, q := range []string{"?after=nope", "?outcome=maybe", "?after=" + unknown} {
		st := decode(t, ts.do(t, "GET", "/v1/audit/stream"+q, ts.cred, nil), &eb)
		expectErr(t, q, st, eb, "TALOS_INVALID_INPUT")
	}
}

// TestAuditStreamAcrossReplicas: two replicas share one PostgreSQL audit
// log; a stream opened on A shows the decisions made on B, and B's stats
// stay B's own (scope replica).
func TestAuditStreamAcrossReplicas(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	cfg := testConfig(t)
	cfg.PostgresURL = dsn
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	cfg.MasterKey[0] = 7
	dropTablesAtEnd(t, dsn, cfg.tablePrefix)
	cfgB := cfg
	cfgB.DataDir = t.TempDir() + "/data-b"
	cfgB.MasterKey = append([]byte(nil), cfg.MasterKey...)
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfgB)
	a.serve(t)
	b.cred = a.cred // the owner's session works on every replica (shared store)

	alice := newAgent(t, b, "alice", "team-a")
	tok := issue(t, b, alice.did, false, grant("files", "read"))
	resp, rd := openStream(t, a, a.cred, "?surface="+opAuthorize+"&principal_id="+alice.did, "")
	if resp.StatusCode != 200 {
		t.Fatalf("stream on A: %d", resp.StatusCode)
	}
	alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, nil) // on B
	ev := nextEvent(t, rd)
	if ev.Event.SurfaceID != opAuthorize || ev.Event.Principal.PrincipalID != alice.did || ev.Event.Outcome != "success" {
		t.Fatalf("event from B on A's stream: %+v", ev)
	}
	if sa, sb := adminStats(t, a, a.cred, ""), adminStats(t, b, b.cred, ""); sa.Decisions.BySurface[opAuthorize] != 0 || sb.Decisions.BySurface[opAuthorize] != 1 || sb.Scope != "replica" {
		t.Fatalf("stats: A %v, B %v (%s)", sa.Decisions.BySurface, sb.Decisions.BySurface, sb.Scope)
	}
}
