package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	auditpg "github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
	"github.com/talosgo/talos/ratchet"
)

// TestEndToEndEmbedded runs the end-to-end scenario on the embedded
// defaults: file audit log, in-memory budgets, limits, replay and A2A.
func TestEndToEndEmbedded(t *testing.T) {
	runEndToEnd(t, testConfig(t))
}

// TestEndToEndRedisPostgres runs it on Redis (budgets, limits, revocation
// and replay stores) and PostgreSQL (A2A, secrets, config versions).
func TestEndToEndRedisPostgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	rc, real := testenv.Redis(t)
	if real {
		cfg.RedisURL = testenv.RedisURL()
	} else {
		cfg.RedisURL = "redis://" + rc.(*redis.Client).Options().Addr + "/0"
	}
	runEndToEnd(t, cfg)
}

func runEndToEnd(t *testing.T, cfg Config) {
	// A real MCP server over streamable HTTP on loopback, reached through
	// the configured upstream setting.
	files := newFileServer()
	upstream := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return files.server }, nil))
	t.Cleanup(upstream.Close)
	cfg.MCPUpstreams = []mcpUpstream{{Name: "files", URL: upstream.URL}}
	ts := newTestServer(t, cfg)
	if cfg.PostgresURL != "" {
		dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	}
	if _, onPG := ts.core.logStore.(*auditpg.Store); onPG != (cfg.PostgresURL != "") {
		t.Fatalf("audit store %T with PostgreSQL %v", ts.core.logStore, cfg.PostgresURL != "")
	}
	ts.serve(t) // over a real loopback listener from here on

	au := newAuditor(t, ts)
	au.checkpoint()
	start := au.cp.Size

	// Two agents with their own wallets.
	alice := newAgent(t, ts, "alice", "team-e2e")
	bob := newAgent(t, ts, "bob", "team-e2e")

	// An A2A session; frames are ratchet-encrypted end to end.
	ap, bp, id := openSession(t, alice, bob)
	base := "/a2a/sessions/" + id
	for i, msg := range []string{"hi bob", "the plan is ready"} {
		if st := alice.call("POST", base+"/frames", sendBody(ap.frame(id, msg)), nil); st != http.StatusCreated {
			t.Fatalf("frame %d: %d", i, st)
		}
	}
	var page framesPage
	if st := bob.call("GET", base+"/frames", nil, &page); st != 200 || len(page.Frames) != 2 {
		t.Fatalf("bob lists: %d %d", st, len(page.Frames))
	}
	for i, raw := range page.Frames {
		f, err := ratchet.ParseFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := bp.sess.DecryptFrame(f)
		if err != nil || string(pt) != []string{"hi bob", "the plan is ready"}[i] {
			t.Fatalf("bob decrypts frame %d: %q %v", i, pt, err)
		}
	}
	if st := bob.call("POST", base+"/frames", sendBody(bp.frame(id, "ack")), nil); st != http.StatusCreated {
		t.Fatalf("bob replies: %d", st)
	}
	alice.call("GET", base+"/frames?cursor="+encodeFrameCursor(0), nil, &page)
	f, err := ratchet.ParseFrame(page.Frames[len(page.Frames)-1])
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := ap.sess.DecryptFrame(f); err != nil || string(pt) != "ack" {
		t.Fatalf("alice decrypts: %q %v", pt, err)
	}
	// The server stored bob's sealed ratchet state without opening it:
	// bob gets it back and opens it with his own key.
	var s sessionBody
	bob.call("GET", base, nil, &s)
	blob, err := decodeB64u(s.Blob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ratchet.UnmarshalSealed(bp.kr, blob, []byte("a2a:"+bob.did+":"+id), ratchet.Config{}); err != nil {
		t.Fatalf("bob's stored state: %v", err)
	}

	// An MCP tool through the gateway, within the key budget ($0.002 at
	// $0.001 a call), then beyond it.
	putBudget(t, ts, "key:"+alice.did, "0.002", "hard")
	tok := issue(t, ts, alice.did, false, grant("files", "read_file"))
	cs := alice.mcpSession(t, tok.Token)
	read := &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/plan"}}
	for i := 0; i < 2; i++ {
		res, err := cs.CallTool(t.Context(), read)
		if err != nil || textOf(res) != "contents of /plan" {
			t.Fatalf("call %d: %v %v", i, res, err)
		}
	}
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("beyond the budget: %v", err)
	}
	if files.reads.Load() != 2 {
		t.Fatalf("upstream saw %d calls", files.reads.Load())
	}
	if st := bob.call("DELETE", base, nil, nil); st != 200 {
		t.Fatalf("close: %d", st)
	}

	// The auditor, holding only the key from GET /v1/identity, verifies
	// every event since the start under a signed checkpoint consistent with
	// the first one.
	cp := au.checkpoint()
	count := map[string]int{}
	for i := start; i < cp.Size; i++ {
		ev := au.verifyIncluded(i)
		count[ev.SurfaceID+"/"+ev.Outcome]++
		if ev.SurfaceID == opMCPGateway && ev.Outcome != "success" && ev.Meta["error_code"] != string(contracts.CodeBudgetExceeded) {
			t.Fatalf("refused call event %+v", ev)
		}
	}
	want := map[string]int{
		"admin/success":       4, // two principals, a budget, a capability
		"a2a/success":         9, // create, accept, three frames, close, and the three reads
		"mcp.gateway/success": 2,
		"mcp.gateway/failure": 1, // BUDGET_EXCEEDED (402)
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("audited %v, want %v", count, want)
	}
	t.Logf("verified %d events: %v", cp.Size-start, fmt.Sprint(count))
}
