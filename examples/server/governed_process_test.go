package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"

	mcpgw "github.com/talosgo/talos/gateway/mcp"
)

// onceFiles is an MCP server whose write tool executes each idempotency
// key once and counts the calls it receives and the writes it executes.
type onceFiles struct {
	mu          sync.Mutex
	seen        map[string]bool
	sent, execs int
}

func newOnceFiles(t *testing.T) (*onceFiles, string) {
	o := &onceFiles{seen: map[string]bool{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "write_file"}, func(_ context.Context, req *mcp.CallToolRequest, a pathArgs) (*mcp.CallToolResult, any, error) {
		key, _ := req.Params.Meta[mcpgw.MetaIdempotencyKey].(string)
		o.mu.Lock()
		defer o.mu.Unlock()
		o.sent++
		if !o.seen[key] || key == "" {
			o.seen[key] = true
			o.execs++
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wrote " + a.Path}}}, nil, nil
	})
	return o, serveMCP(t, s)
}

func (o *onceFiles) counts() (sent, execs int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent, o.execs
}

// TestGovernedCrashServer runs the built server with governed writes on
// its data directory, SIGKILLs it while a write is blocked after a step
// (TALOS_TEST_TGA_BLOCK_AFTER: 3 after the tool_call was persisted, 0
// after the dispatch returned), starts it again on the same directory and
// checks that start-up recovery finished the trace (re-dispatching the
// same tool call with its idempotency key), that the upstream executed the
// write once, that the trace verifies with the audit package's TGA
// verifier, and that the client's retry with its key is answered from the
// trace.
func TestGovernedCrashServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := buildServer(t)
	for _, tc := range []struct {
		after      string
		sent, exec int
	}{{"3", 1, 1}, {"0", 2, 1}} {
		t.Run("after step "+tc.after, func(t *testing.T) {
			files, url := newOnceFiles(t)
			dir := filepath.Join(t.TempDir(), "data")
			env := []string{
				"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TALOS_TRACE_EXPORTER=none",
				"TALOS_MASTER_KEY=" + contracts.EncodeBase64URL(randomBytes(32)),
				"TALOS_MCP_UPSTREAMS=files=" + url, "TALOS_MCP_SUPERVISOR=approve",
			}
			start := func(extra ...string) *replicaProc {
				r := startReplicaIn(t, bin, append(append([]string{}, env...), extra...), dir)
				r.waitReady(t)
				return r
			}
			r1 := start("TALOS_TEST_TGA_BLOCK_AFTER=" + tc.after)
			c := &cluster{t: t, replicas: []*replicaProc{r1}}
			var err error
			if c.routes, err = talos.NewRouteTable(attestedRoutes()); err != nil {
				t.Fatal(err)
			}
			c.session = ownerSession(t, r1)
			alice := c.agent("alice", "team-a")
			tok := c.issue(0, alice.did, grant("files", "write_file")).Token
			write := func(cs *mcp.ClientSession) (*mcp.CallToolResult, error) {
				return cs.CallTool(context.Background(), &mcp.CallToolParams{Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "crash-1"},
					Name: "files.write_file", Arguments: map[string]any{"path": "/c", "data": "x"}})
			}
			cs := alice.on(0).mcpSession(t, tok)
			go write(cs) // blocks in the server, which is killed
			waitLogged(t, func() bool { return strings.Contains(r1.log.String(), "tga test hook: blocking after step") }, r1)
			if err := r1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-r1.done

			r2 := start()
			c.replicas = []*replicaProc{r2}
			if !strings.Contains(r2.log.String(), "governed write recovered") {
				t.Fatalf("no recovery logged:\n%s", r2.log.String())
			}
			if sent, execs := files.counts(); sent != tc.sent || execs != tc.exec {
				t.Fatalf("upstream: %d calls, %d executions; want %d, %d", sent, execs, tc.sent, tc.exec)
			}
			// The trace on disk verifies and is COMPLETED.
			paths, _ := filepath.Glob(filepath.Join(dir, tgaDirName, "*.jsonl"))
			if len(paths) != 1 {
				t.Fatalf("traces %v", paths)
			}
			raw, err := os.ReadFile(paths[0])
			if err != nil {
				t.Fatal(err)
			}
			var entries []json.RawMessage
			for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
				var rec mcpgw.TraceRecord
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatal(err)
				}
				entries = append(entries, rec.Entry)
			}
			m, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, entries)
			if err != nil || m.State() != audit.StateCompleted || m.Seq() != 4 {
				t.Fatalf("trace: %v %v", m, err)
			}
			// The recovery is audited for alice (the crash cut the
			// original call off before the Kernel audited it).
			var events struct {
				Events []audit.Event `json:"events"`
			}
			if st := c.admin(0, "GET", "/v1/audit/events?surface_id=mcp.gateway&principal_id="+alice.did, nil, &events); st != 200 {
				t.Fatalf("audit events: %d", st)
			}
			recovered := 0
			for _, e := range events.Events {
				if e.Meta["decision_reason"] == "TGA_RECOVERY_"+audit.RecoveryRedispatch && e.Outcome == "success" {
					recovered++
				}
			}
			if recovered != 1 {
				t.Fatalf("%d recovery events in %+v", recovered, events.Events)
			}
			// The client's retry with its key gets the one result.
			res, err := write(alice.on(0).mcpSession(t, tok))
			if err != nil || textOf(res) != "wrote /c" {
				t.Fatalf("retry: %v %v", res, err)
			}
			if sent, execs := files.counts(); sent != tc.sent || execs != tc.exec {
				t.Fatalf("the retry reached the upstream: %d calls, %d executions", sent, execs)
			}
		})
	}
}

// startReplicaIn is startReplica on a given data directory (kept across
// restarts).
func startReplicaIn(t *testing.T, bin string, env []string, dir string) *replicaProc {
	t.Helper()
	addr := freePort(t)
	r := &replicaProc{url: "http://" + addr, out: &syncBuffer{}, log: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin)
	r.cmd.Env = append(append([]string{}, env...), "TALOS_LISTEN="+addr, "TALOS_DATA_DIR="+dir)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", r.log.String())
		}
	})
	return r
}

// ownerSession spends r's printed bootstrap credential on a fresh owner
// and returns the owner's admin session.
func ownerSession(t *testing.T, r *replicaProc) string {
	t.Helper()
	cred := parseCredential(r.out.String())
	if cred == "" {
		t.Fatalf("no bootstrap credential printed:\n%s", r.out.String())
	}
	w, err := identity.GenerateWallet("owner")
	if err != nil {
		t.Fatal(err)
	}
	owner := admintest.SignerFor(t, w, admin.RoleOwner)
	req, _ := http.NewRequest("POST", r.url+"/v1/admin/bootstrap", bytes.NewReader(fmt.Appendf(nil, `{"did":%q}`, w.DID().String())))
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	if st := sendReq(t, req, nil); st != http.StatusCreated {
		t.Fatalf("bootstrap: %d", st)
	}
	req, _ = http.NewRequest("POST", r.url+"/v1/admin/sessions", bytes.NewReader([]byte(`{"ttl_seconds":3600}`)))
	req.Header.Set("Content-Type", "application/json")
	if err := owner.Sign(req); err != nil {
		t.Fatal(err)
	}
	var sess admin.SessionResponse
	if st := sendReq(t, req, &sess); st != http.StatusCreated || sess.Token == "" {
		t.Fatalf("session: %d", st)
	}
	return sess.Token
}

// waitLogged polls cond for up to 30 s while r runs.
func waitLogged(t *testing.T, cond func() bool, r *replicaProc) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("condition not reached; log:\n%s", r.log.String())
}
