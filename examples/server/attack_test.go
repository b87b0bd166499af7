package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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
)

// Attacks of issue #10 (server half), each run against a live server: a
// real listener on loopback with the real handlers.

// recordingLLM is an OpenAI-compatible upstream on loopback that records
// every body it receives and reads it the way a case-sensitive upstream
// does (exact keys, last duplicate wins). With dense set it reports one
// prompt token per request byte (the densest an honest tokenizer gets) and
// max_tokens of completion per choice: the most the request could cost.
type recordingLLM struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	tokens int64 // total tokens reported
	dense  bool
}

func newRecordingLLM(t *testing.T, dense bool) *recordingLLM {
	f := &recordingLLM{dense: dense}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var doc map[string]any // case-sensitive, last wins
		json.Unmarshal(b, &doc)
		model, _ := doc["model"].(string)
		maxTokens := int64(16)
		if v, ok := doc["max_tokens"].(float64); ok {
			maxTokens = int64(v)
		}
		total := int64(10)
		if f.dense {
			total = int64(len(b)) + maxTokens
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, b)
		f.tokens += total
		f.mu.Unlock()
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			model, total-maxTokens, maxTokens, total)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *recordingLLM) received() ([][]byte, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...), f.tokens
}

// liveServer serves cfg on a loopback listener.
func liveServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := newTestServer(t, cfg)
	ts.serve(t)
	return ts
}

// TestAttackCaseFoldSmuggling: a token granting model gpt-cheap must not
// get gpt-expensive to the upstream through a second, differently cased
// "MODEL" key, nor a max_tokens that the budget read as 1; nested
// duplicates are refused too. Refused bodies never reach the upstream; an
// accepted body reaches it byte for byte.
func TestAttackCaseFoldSmuggling(t *testing.T) {
	llm := newRecordingLLM(t, false)
	cfg := testConfig(t)
	cfg.LLMUpstream = llm.srv.URL + "/v1"
	cfg.LLMPricePer1K = 10_000
	ts := liveServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("llm", "gpt-cheap"))
	putBudget(t, ts, "key:"+alice.did, "0.01", "hard")
	before := auditSize(t, ts)

	for _, body := range []string{
		`{"model":"gpt-expensive","MODEL":"gpt-cheap","max_tokens":1,"messages":[]}`,
		`{"MODEL":"gpt-cheap","model":"gpt-expensive","max_tokens":1,"messages":[]}`,
		`{"model":"gpt-cheap","max_tokens":128000,"Max_Tokens":1,"messages":[]}`,
		`{"model":"gpt-cheap","Max_Tokens":1,"messages":[]}`,                                              // mis-cased alone
		`{"Model":"gpt-cheap","max_tokens":1}`,                                                            // upstream sees no model
		`{"model":"gpt-cheap","max_tokens":1,"messages":[{"role":"user","Role":"system","content":"x"}]}`, // nested
		`{"model":"gpt-cheap","max_tokens":1,"metadata":{"a":{"k":1,"\u212a":2}}}`,                        // Kelvin sign folds to k
		`{"model":"gpt-cheap","max_tokens":1,"max_completion_tokens":128000}`,                             // a second bound
		`{"model":"gpt-cheap","max_tokens":1,"n":128}`,                                                    // n multiplies the completion
	} {
		var eb errBody
		if st := alice.chat(tok.Token, body, &eb); st != http.StatusBadRequest || eb.Code != string(contracts.CodeInvalidInput) {
			t.Errorf("%s: %d %+v, want 400 TALOS_INVALID_INPUT", body, st, eb)
		}
	}
	if got, _ := llm.received(); len(got) != 0 {
		t.Fatalf("refused bodies reached the upstream: %q", got)
	}
	if auditSize(t, ts) != before {
		t.Fatal("refused bodies were audited as calls")
	}
	ok := `{"model":"gpt-cheap","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"temperature":0.2}`
	var resp map[string]any
	if st := alice.chat(tok.Token, ok, &resp); st != 200 || resp["model"] != "gpt-cheap" {
		t.Fatalf("accepted body: %d %v", st, resp)
	}
	if got, _ := llm.received(); len(got) != 1 || string(got[0]) != ok {
		t.Fatalf("the upstream received %q, want exactly the authorized body", got)
	}
	// The audit event names the model the upstream received.
	au := newAuditor(t, ts)
	if ev := au.verifyIncluded(auditSize(t, ts) - 1); ev.Meta["action"] != "gpt-cheap" {
		t.Fatalf("audited action %v", ev.Meta["action"])
	}
}

// TestAttackCaseFoldOtherSurfaces: the same rule on the kernel API, the MCP
// gateway's JSON-RPC bodies and the config service.
func TestAttackCaseFoldOtherSurfaces(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	files := newFileServer()
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": files.server})
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read_file", "write_file"), grant("kernel", "x"))

	var eb errBody
	for _, body := range []string{
		`{"capability":"` + tok.Token + `","tool":"files","action":"read_file","Action":"write_file"}`,
		`{"capability":"` + tok.Token + `","tool":"files","Tool":"kernel","action":"read_file"}`,
	} {
		if st := alice.call("POST", "/v1/authorize", body, &eb); st != http.StatusBadRequest || eb.Code != string(contracts.CodeInvalidInput) {
			t.Errorf("authorize %s: %d %+v", body, st, eb)
		}
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read_file","NAME":"files.write_file","arguments":{"path":"/a"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.write_file","arguments":{"path":"/a","PATH":"/etc/passwd"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"files.write_file","arguments":{"path":"/a"}}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}`,
	} {
		req, _ := http.NewRequest("POST", alice.base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(talos.HeaderCapability, tok.Token)
		resp, err := alice.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if st := decode(t, resp, &eb); st != http.StatusBadRequest || eb.Code != string(contracts.CodeInvalidInput) {
			t.Errorf("mcp %s: %d %+v", body, st, eb)
		}
	}
	if files.writes.Load() != 0 || files.reads.Load() != 0 {
		t.Fatal("a refused JSON-RPC body reached the upstream")
	}
	// A2A and admin bodies.
	bob := newAgent(t, ts, "bob", "team-b")
	if st := alice.call("POST", "/a2a/sessions", `{"schema_id":"talos.a2a.session_create_request","schema_version":"v1","responder_id":"`+bob.did+`","Responder_ID":"`+alice.did+`","ratchet_state_blob_b64u":"AA","ratchet_state_digest":"`+strings.Repeat("0", 64)+`"}`, &eb); st != http.StatusBadRequest || eb.Code != string(contracts.CodeInvalidInput) {
		t.Errorf("a2a session create with a folded duplicate: %d %+v", st, eb)
	}
	if st := decode(t, ts.do(t, "PUT", "/v1/principals/"+bob.did, ts.cred, []byte(`{"team_id":"team-b","TEAM_ID":"team-admin"}`)), &eb); st != http.StatusBadRequest || eb.Code != string(contracts.CodeInvalidInput) {
		t.Errorf("admin principal with a folded duplicate: %d %+v", st, eb)
	}
	// The config file.
	for _, raw := range []string{
		`{"config_version":"1.0","global":{"env":"dev","ENV":"prod"}}`,
		`{"config_version":"1.0","global":{"Env":"prod"}}`,
		`{"config_version":"1.0","global":{},"extensions":{"x":{"a":1,"A":2}}}`,
	} {
		cfg := DefaultConfig()
		if _, err := applyConfigFile(&cfg, []byte(raw), func(string) string { return "" }); err == nil {
			t.Errorf("config file %s accepted", raw)
		}
	}
	// Config documents: mis-cased and folded keys.
	for _, body := range []string{
		`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":12.5,"Max_USD":1000}`,
		`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","Max_usd":1000}`,
		`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":12.5,"x":{"k":1,"K":2}}`,
	} {
		resp := ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(body))
		if st := decode(t, resp, &eb); st < 400 || st >= 500 {
			t.Errorf("config %s: %d %+v", body, st, eb)
		}
	}
}

// TestAttackDensePromptHardCap: a prompt that tokenizes at one token per
// byte (not 4) must not push the spend past a hard cap. The upstream
// reports the most each request could cost; the total it reports stays
// within the $0.01 cap.
func TestAttackDensePromptHardCap(t *testing.T) {
	llm := newRecordingLLM(t, true)
	cfg := testConfig(t)
	cfg.LLMUpstream = llm.srv.URL + "/v1"
	cfg.LLMPricePer1K = 10_000 // 10 micro-USD per token: $0.01 = 1000 tokens
	ts := liveServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("llm", "dense"))
	putBudget(t, ts, "key:"+alice.did, "0.01", "hard")

	// ~330 bytes: 82 tokens by a len/4 estimate, 330+ by the upstream.
	body := `{"model":"dense","max_tokens":50,"messages":[{"role":"user","content":"` + strings.Repeat("語", 90) + `"}]}`
	refused := false
	for i := 0; i < 20 && !refused; i++ {
		var eb errBody
		st := alice.chat(tok.Token, body, &eb)
		switch {
		case st == 200:
		case eb.Code == string(contracts.CodeBudgetExceeded):
			refused = true
		default:
			t.Fatalf("call %d: %d %+v", i, st, eb)
		}
	}
	bodies, tokens := llm.received()
	if !refused || len(bodies) == 0 {
		t.Fatalf("after %d calls the cap never refused (or nothing passed)", len(bodies))
	}
	if spent := tokens * cfg.LLMPricePer1K / 1000; spent > 10_000 {
		t.Fatalf("the upstream generated %d tokens = %d micro-USD over a 10000 micro-USD hard cap", tokens, spent)
	}
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Reserved != "0" || u.Used > "0.01" {
		t.Fatalf("budget after the calls: %+v", u)
	}
	// Without max_tokens the upstream is not bound: refused under a hard
	// cap, even one with room for the default reservation.
	putBudget(t, ts, "key:"+alice.did, "1", "hard")
	var eb errBody
	if st := alice.chat(tok.Token, `{"model":"dense","messages":[]}`, &eb); st != http.StatusBadRequest {
		t.Fatalf("no max_tokens under a hard cap: %d %+v", st, eb)
	}
	if got, _ := llm.received(); len(got) != len(bodies) {
		t.Fatal("a request without max_tokens reached the upstream")
	}
}

// anonGet fetches base+path with no credential, or with cred.
func anonGet(t *testing.T, base, path, cred string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAttackAnonymousEntryBytes: events need the admin credential, and so
// do their bytes through the tiles and the proofs; checkpoints, hash tiles
// and proofs stay public. TALOS_AUDIT_PUBLIC opts into a public log.
func TestAttackAnonymousEntryBytes(t *testing.T) {
	for _, public := range []bool{false, true} {
		t.Run(fmt.Sprint("public=", public), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.AuditPublic = public
			ts := liveServer(t, cfg)
			alice := newAgent(t, ts, "alice", "team-a")
			tok := issue(t, ts, alice.did, false, grant("files", "read"))
			for range 3 {
				authorize(t, alice, tok.Token, "files", "read")
			}
			if err := ts.core.publishCheckpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			anon := &auditor{t: t, ts: ts, client: &http.Client{}, base: ts.url}
			var id struct {
				VKey string `json:"audit_verifier_key"`
			}
			anon.getJSON("/v1/identity", &id)
			anon.vkey = id.VKey
			cp := anon.checkpoint() // public, verifies
			entries := fmt.Sprintf("/tlog/tile/entries/000.p/%d", cp.Size)
			for _, p := range []string{
				entries,
				fmt.Sprintf("/tlog/tile//entries/000.p/%d", cp.Size),     // cleaned by a file server
				fmt.Sprintf("/tlog/tile/0/../entries/000.p/%d", cp.Size), // dot segments
				fmt.Sprintf("/tlog/tile%%2Fentries/000.p/%d", cp.Size),   // escaped slash
				"/v1/audit/events", "/v1/audit/entries/0",
				fmt.Sprintf("/v1/audit/bundle?start=0&end=%d", cp.Size),
			} {
				st, b := anonGet(t, ts.url, p, "")
				if public {
					if p == entries && st != 200 {
						t.Errorf("public log: %s: %d", p, st)
					}
					continue
				}
				if st == 200 || bytes.Contains(b, []byte("files")) {
					t.Errorf("anonymous %s: %d %q", p, st, b)
				}
			}
			if st, _ := anonGet(t, ts.url, entries, ts.cred); st != 200 {
				t.Fatalf("auditor entry bundle: %d", st)
			}
			// No shared cache may keep an entry bundle served to an auditor.
			rec := ts.do(t, "GET", entries, ts.cred, nil)
			if cc := rec.Header.Get("Cache-Control"); strings.Contains(cc, "public") == !public {
				t.Fatalf("entry bundle Cache-Control %q (public log: %v)", cc, public)
			}
			// Hash tiles and the tlog checkpoint stay public.
			if st, _ := anonGet(t, ts.url, fmt.Sprintf("/tlog/tile/0/000.p/%d", cp.Size), ""); st != 200 {
				t.Fatalf("anonymous hash tile: %d", st)
			}
			if st, _ := anonGet(t, ts.url, "/tlog/checkpoint", ""); st != 200 {
				t.Fatalf("anonymous tlog checkpoint: %d", st)
			}
			// The proof verifies for a leaf hash the caller holds; the entry
			// comes with it only to readers.
			var pb proofBody
			anon.getJSON(fmt.Sprintf("/v1/audit/proofs/inclusion?index=1&tree_size=%d", cp.Size), &pb)
			if (pb.EntryB64u != "") != public || pb.LeafHash == "" {
				t.Fatalf("anonymous inclusion proof: entry %q, leaf %q", pb.EntryB64u, pb.LeafHash)
			}
			au := newAuditor(t, ts)
			au.cp = cp
			ev := au.verifyIncluded(1)
			leaf := parseHashes(t, []string{pb.LeafHash})[0]
			if err := audit.VerifyInclusion(parseHashes(t, pb.Proof), cp, 1, leaf); err != nil || ev == nil {
				t.Fatalf("anonymous proof does not verify the leaf hash: %v", err)
			}
		})
	}
}

// TestAttackEscapedSlashRoute: an attested route is resolved from the
// pattern the mux dispatched to, so a request signed for one route cannot be
// authorized as it and served as another through %2F.
func TestAttackEscapedSlashRoute(t *testing.T) {
	ts := liveServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	before := auditSize(t, ts)
	var eb errBody
	for _, p := range []string{"/v1%2Fauthorize", "/v1/authorize%2F", "/v1/a2a%2Fsessions", "/v1/%61uthorize%2F.."} {
		// Signed for the authorize route, sent to an escaped variant.
		req, err := http.NewRequest("POST", ts.url+p, bytes.NewReader(mustJSON(authorizeRequest{Capability: tok.Token, Tool: "files", Action: "read"})))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if err := alice.signer.Sign(req, opAuthorize); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if st := decode(t, resp, &eb); st != http.StatusNotFound {
			t.Errorf("POST %s: %d %+v", p, st, eb)
		}
	}
	if auditSize(t, ts) != before {
		t.Fatal("an escaped-slash request was authorized")
	}
	// The opcode comes from the dispatched pattern only.
	r := httptest.NewRequest("POST", "/v1%2Fauthorize", nil)
	r.Pattern = "/"
	if _, err := ts.core.routes.Opcode(r); err == nil {
		t.Fatal("the catch-all route has an opcode")
	}
}

// TestAttackCheckpointFreshness: tile clients see a fresh tree head without
// anyone calling GET /v1/audit/checkpoint, and the last one is published at
// shutdown.
func TestAttackCheckpointFreshness(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointInterval = 20 * time.Millisecond
	ts := liveServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	d := authorize(t, alice, tok.Token, "files", "read")
	var id struct {
		VKey string `json:"audit_verifier_key"`
	}
	anon := &auditor{t: t, ts: ts, client: &http.Client{}, base: ts.url}
	anon.getJSON("/v1/identity", &id)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, note := anonGet(t, ts.url, "/tlog/checkpoint", "")
		cp, err := audit.VerifyCheckpoint(note, id.VKey)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size > d.AuditIndex {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/tlog/checkpoint still at size %d, the decision is entry %d", cp.Size, d.AuditIndex)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// At shutdown: with no schedule, the final tree head is still published.
	cfg = testConfig(t)
	cfg.CheckpointInterval = 0
	ts = liveServer(t, cfg)
	alice = newAgent(t, ts, "alice", "team-a")
	tok = issue(t, ts, alice.did, false, grant("files", "read"))
	d = authorize(t, alice, tok.Token, "files", "read")
	anon = &auditor{t: t, ts: ts, client: &http.Client{}, base: ts.url}
	anon.getJSON("/v1/identity", &id)
	if err := ts.stop(t); err != nil {
		t.Fatal(err)
	}
	note, err := os.ReadFile(filepath.Join(cfg.DataDir, "audit", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.VerifyCheckpoint(note, id.VKey)
	if err != nil || cp.Size <= d.AuditIndex {
		t.Fatalf("checkpoint on disk after shutdown: size %d, entry %d: %v", cp.Size, d.AuditIndex, err)
	}
}

// TestAttackNoDiskWritePerAnonymousCall: neither /health/ready nor the
// checkpoint route writes to disk per anonymous call, while the checkpoint
// route still answers the current tree.
func TestAttackNoDiskWritePerAnonymousCall(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointInterval = 0
	ts := newTestServer(t, cfg)
	ts.dirProbe.every = time.Hour
	ts.serve(t)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	if st, _ := anonGet(t, ts.url, "/health/ready", ""); st != 200 {
		t.Fatalf("ready: %d", st)
	}
	cpFile := filepath.Join(cfg.DataDir, "audit", "checkpoint")
	stat := func() (time.Time, time.Time, []byte) {
		d, err := os.Stat(cfg.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.Stat(cpFile)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(cpFile)
		return d.ModTime(), c.ModTime(), b
	}
	dir0, cp0, note0 := stat()
	var id struct {
		VKey string `json:"audit_verifier_key"`
	}
	anon := &auditor{t: t, ts: ts, client: &http.Client{}, base: ts.url}
	anon.getJSON("/v1/identity", &id)
	anon.vkey = id.VKey
	for i := 0; i < 20; i++ {
		d := authorize(t, alice, tok.Token, "files", "read")
		if st, _ := anonGet(t, ts.url, "/health/ready", ""); st != 200 {
			t.Fatalf("ready: %d", st)
		}
		if cp := anon.checkpoint(); cp.Size <= d.AuditIndex {
			t.Fatalf("checkpoint route is stale: size %d, entry %d", cp.Size, d.AuditIndex)
		}
	}
	dir1, cp1, note1 := stat()
	if !dir1.Equal(dir0) {
		t.Fatal("the data directory changed: /health/ready probed it per call")
	}
	if !cp1.Equal(cp0) || !bytes.Equal(note0, note1) {
		t.Fatal("the checkpoint file was rewritten by anonymous checkpoint calls")
	}
}

// smallBufferListener shrinks every accepted connection's send buffer, so
// that a response larger than a few KiB waits for the client to read.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestAttackSlowReader: a client that stops reading holds a connection
// only until the write deadline; then the server closes it.
func TestAttackSlowReader(t *testing.T) {
	cfg := testConfig(t)
	cfg.WriteTimeout = time.Second
	if err := parseRateLimits(&cfg.RateLimits, "kernel.authorize=100000/s"); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	for range 300 {
		authorize(t, alice, tok.Token, "files", "read")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- ts.Serve(ctx, smallBufferListener{ln}) }()
	t.Cleanup(func() { cancel(); <-done })

	get := "GET /v1/audit/events?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ts.cred + "\r\nConnection: close\r\n\r\n"
	dial := func() net.Conn {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, get); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The answer is far larger than the socket buffers (read in process,
	// where no deadline applies).
	resp := ts.do(t, "GET", "/v1/audit/events?limit=1000", ts.cred, nil)
	full, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(full) < 100_000 {
		t.Fatalf("events: %d, %d bytes", resp.StatusCode, len(full))
	}
	// A client that stalls past the deadline gets a cut answer: the server
	// gave up on the connection instead of holding it. (Without a write
	// deadline the whole answer, terminating chunk included, would wait in
	// the buffers until it reads.)
	c := dial()
	time.Sleep(3 * cfg.WriteTimeout)
	part, _ := io.ReadAll(c)
	c.Close()
	if !bytes.HasPrefix(part, []byte("HTTP/1.1 200")) {
		t.Fatalf("slow reader: no answer started (%d bytes)", len(part))
	}
	if bytes.HasSuffix(part, []byte("0\r\n\r\n")) {
		t.Fatalf("slow reader got the whole answer (%d bytes): no write deadline", len(part))
	}
}

// TestAttackDataDirMode: the data directory is created 0700, a looser one
// readable by others is tightened, and one writable by others is refused.
func TestAttackDataDirMode(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	if st, _ := os.Stat(cfg.DataDir); st.Mode().Perm() != 0o700 {
		t.Fatalf("created %v", st.Mode().Perm())
	}
	ts.Close(t.Context())

	loose := testConfig(t)
	if err := os.MkdirAll(loose.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose.DataDir, 0o755)
	newTestServer(t, loose)
	if st, _ := os.Stat(loose.DataDir); st.Mode().Perm() != 0o700 {
		t.Fatalf("a 0755 data directory was left %v", st.Mode().Perm())
	}
	open := testConfig(t)
	os.MkdirAll(open.DataDir, 0o777)
	os.Chmod(open.DataDir, 0o777)
	if _, err := New(t.Context(), open, nil); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("a world-writable data directory: %v", err)
	}
	if err := prepareDataDir(filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
	var pe *os.PathError
	if err := prepareDataDir("/proc/self/nope/x"); err == nil || !errors.As(err, &pe) {
		t.Fatalf("uncreatable data directory: %v", err)
	}
}
