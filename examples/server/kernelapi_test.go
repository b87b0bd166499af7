package main

import (
	"net/http"
	"testing"
)

func TestAuthorizeAttested(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	var d decisionBody
	st := alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &d)
	if st != http.StatusOK || !d.Allowed {
		t.Fatalf("authorize: %d %+v", st, d)
	}
	st = alice.call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "write"}, &d)
	if st != http.StatusOK || d.Allowed {
		t.Fatalf("authorize write: %d %+v", st, d)
	}
	au := newAuditor(t, ts)
	au.checkpoint()
	ev := au.verifyIncluded(d.AuditIndex)
	t.Logf("%+v", ev)
}
