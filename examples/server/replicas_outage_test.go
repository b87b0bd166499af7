package main

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/talosgo/talos/internal/testenv"
)

// TestReplicasRedisOutage: two replicas on PostgreSQL and a Redis of the
// test's own. With Redis killed, decisions fail closed and readiness says
// so; an admin edit stored meanwhile (PostgreSQL still answers) reaches
// the other replica once Redis is back (the failed publication is retried,
// and the resubscription reads the versions).
func TestReplicasRedisOutage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	kill := startRedisAt(t, port)

	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.RedisURL = "redis://" + addr + "/0"
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	dropReplicaTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	a := newTestServer(t, cfg)
	cfg2 := cfg
	cfg2.DataDir = t.TempDir() + "/replica"
	b := newTestServer(t, cfg2)
	b.cred = a.cred
	a.life.Start()
	b.life.Start()

	alice := newAgent(t, a, "alice", "team-o")
	tok := issue(t, a, alice.did, false, grant("files", "read"))
	if d := authorize(t, alice.on(b), tok.Token, "files", "read"); !d.Allowed {
		t.Fatalf("before the outage: %+v", d)
	}

	kill()
	var d decisionBody
	if st := alice.on(b).call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &d); st == http.StatusOK && d.Allowed {
		t.Fatal("allowed with Redis down")
	}
	if st, body := ready(t, b); st != http.StatusServiceUnavailable || body.Checks["redis"].Status != "failed" {
		t.Fatalf("ready with Redis down: %d %+v", st, body)
	}
	// An edit on a while Redis is down: stored in PostgreSQL, not
	// announced yet.
	if st := decode(t, a.do(t, "PUT", "/v1/rbac/roles/outage-role", a.cred, []byte(`{"permissions":["files.read"]}`)), nil); st != http.StatusOK {
		t.Fatalf("put role with Redis down: %d", st)
	}
	if st := decode(t, b.do(t, "GET", "/v1/rbac/roles/outage-role", b.cred, nil), nil); st != http.StatusNotFound {
		t.Fatalf("role on b before Redis is back: %d", st)
	}

	back := time.Now()
	startRedisAt(t, port)
	dl := waitUntil(t, "the role on b after Redis came back", back, func() bool {
		return decode(t, b.do(t, "GET", "/v1/rbac/roles/outage-role", b.cred, nil), nil) == http.StatusOK
	})
	t.Logf("an edit made during the Redis outage reached the other replica %v after Redis came back", dl)
	waitUntil(t, "decisions after Redis came back", back, func() bool {
		var d decisionBody
		st := alice.on(b).call("POST", "/v1/authorize", authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"}, &d)
		return st == http.StatusOK && d.Allowed
	})
}
