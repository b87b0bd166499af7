package main

import (
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"

	mcpgw "github.com/talosgo/talos/gateway/mcp"
)

// TestGatewayListsByGrantsAndIdempotentWrites: through the server (admin
// registrations, RBAC-wrapped verifier, the shared audit log), two agents
// see the tools their tokens allow, and a write with a repeated
// idempotency key runs once.
func TestGatewayListsByGrantsAndIdempotentWrites(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-a")
	acs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "read_file", "write_file")).Token)
	bcs := bob.mcpSession(t, issue(t, ts, bob.did, false, grant("files", "read_file")).Token)

	names := func(cs *mcp.ClientSession) string {
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, tl := range res.Tools {
			n = append(n, tl.Name)
		}
		return strings.Join(n, ",")
	}
	before := auditSize(t, ts)
	if got := names(acs); got != "files.read_file,files.write_file" {
		t.Fatalf("alice sees %s", got)
	}
	if got := names(bcs); got != "files.read_file" {
		t.Fatalf("bob sees %s", got)
	}
	if got := auditSize(t, ts); got != before+2 {
		t.Fatalf("two lists audited %d times", got-before)
	}

	write := func(key, path string) (*mcp.CallToolResult, error) {
		return acs.CallTool(t.Context(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: key},
			Name: "files.write_file", Arguments: map[string]any{"path": path, "data": "x"}})
	}
	for i := 0; i < 3; i++ {
		res, err := write("w-1", "/a")
		if err != nil || textOf(res) != "wrote /a" {
			t.Fatalf("write %d: %v %v", i, res, err)
		}
	}
	if _, err := write("w-1", "/b"); talosCode(t, err) != string(contracts.CodeReplayDetected) {
		t.Fatalf("same key, other arguments: %v", err)
	}
	if _, err := write("", "/a"); talosCode(t, err) != string(contracts.CodeInvalidInput) {
		t.Fatalf("no key: %v", err)
	}
	if n := files.writes.Load(); n != 1 {
		t.Fatalf("the upstream executed %d writes, want 1", n)
	}
}

// TestGatewayIdempotencyPostgres: with PostgreSQL the gateway keeps
// idempotency keys in <prefix>mcp_idempotency; a repeated key runs once.
func TestGatewayIdempotencyPostgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	ts := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix) // mcp_idempotency included
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	alice := newAgent(t, ts, "alice", "team-a")
	cs := alice.mcpSession(t, issue(t, ts, alice.did, false, grant("files", "write_file")).Token)
	for i := 0; i < 2; i++ {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "pg-1"},
			Name: "files.write_file", Arguments: map[string]any{"path": "/a"}})
		if err != nil || textOf(res) != "wrote /a" {
			t.Fatalf("write %d: %v %v", i, res, err)
		}
	}
	if n := files.writes.Load(); n != 1 {
		t.Fatalf("the upstream executed %d writes, want 1", n)
	}
	var rows int
	if err := ts.Server.db.Primary().QueryRow(t.Context(), `SELECT count(*) FROM `+cfg.tablePrefix+`mcp_idempotency WHERE done`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("PostgreSQL holds %d done keys (%v), want 1", rows, err)
	}
}
