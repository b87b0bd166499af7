package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The end-to-end tests build examples/server and this command, start the
// server on a loopback port with a fresh data directory, read its
// one-time bootstrap credential from its standard output and drive it
// with the CLI binary, as an operator would.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds the server and the CLI once per test run.
func binaries(t *testing.T) (server, cli string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs examples/server")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "talos-e2e-bin-")
		if buildErr != nil {
			return
		}
		exe := ""
		if runtime.GOOS == "windows" {
			exe = ".exe"
		}
		for _, b := range []struct{ dir, out string }{{filepath.Join("..", "..", "examples", "server"), "server" + exe}, {".", "talos" + exe}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, b.out), ".")
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build in %s: %v\n%s", b.dir, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "server"), filepath.Join(buildDir, "talos")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// liveServer is a running examples/server.
type liveServer struct {
	url        string
	dataDir    string
	credential string // the printed bootstrap credential
	cmd        *exec.Cmd
	stderr     *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cleanEnv is the test process's environment without TALOS_ settings, so
// the server and the CLI run on their defaults plus what a test sets.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALOS_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer starts examples/server on a fresh data directory (or
// dataDir when not empty) and waits until it is live.
func startServer(t *testing.T, bin, dataDir string) *liveServer {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	for attempt := 0; ; attempt++ {
		addr := freePort(t)
		s := &liveServer{url: "http://" + addr, dataDir: dataDir, stderr: &lockedBuffer{}}
		s.cmd = exec.Command(bin, "-data", dataDir, "-listen", addr)
		s.cmd.Env = cleanEnv()
		s.cmd.Stderr = s.stderr
		stdout, err := s.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		go func() { s.cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			s.cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				s.cmd.Process.Kill()
				<-exited
			}
		})
		// The stdout lines: the DID, then (first start only) the credential.
		ready := s.waitLive(t, exited)
		if !ready {
			if attempt < 3 && strings.Contains(s.stderr.String(), "address already in use") {
				continue // the port was taken between freePort and the bind
			}
			t.Fatalf("the server did not start:\n%s", s.stderr.String())
		}
		deadline := time.After(5 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if c := strings.TrimSpace(l); strings.HasPrefix(c, recoveryPrefix) {
					s.credential = c
					break read
				}
			case <-deadline:
				break read // a restart prints no credential
			}
		}
		go func() {
			for range lines {
			}
		}()
		return s
	}
}

// waitLive polls /health/live until it answers 200 or the process exits.
func (s *liveServer) waitLive(t *testing.T, exited <-chan struct{}) bool {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(s.url + "/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// binCLI runs the CLI binary with a fixed environment.
type binCLI struct {
	t   *testing.T
	bin string
	env []string
	dir string
}

func (b *binCLI) run(args ...string) result {
	b.t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = cleanEnv(b.env...)
	cmd.Dir = b.dir
	cmd.Stdin = strings.NewReader("")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{0, out.String(), errb.String()}
	case errors.As(err, &ee):
		return result{ee.ExitCode(), out.String(), errb.String()}
	}
	b.t.Fatal(err)
	return result{}
}

func (b *binCLI) must(want int, args ...string) result {
	b.t.Helper()
	r := b.run(args...)
	if r.code != want {
		b.t.Fatalf("talos %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

func (b *binCLI) json(args ...string) map[string]any {
	b.t.Helper()
	// --json right after the command name: flags come before arguments.
	nw := len(strings.Fields(cmdName(args)))
	with := append(append(append([]string{}, args[:nw]...), "--json"), args[nw:]...)
	r := b.must(exitOK, with...)
	return decodeJSON(b.t, r.stdout)
}

// items returns the items of a --json list answer.
func items(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, it := range raw {
		out[i] = it.(map[string]any)
	}
	return out
}

// e2eSetup starts a server and bootstraps an owner wallet with the CLI.
type e2e struct {
	srv        *liveServer
	cli        *binCLI
	dir        string
	owner      string // wallet file
	ownerDID   string
	agent      string
	agentDID   string
	credential string // the bootstrap credential's file
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	serverBin, cliBin := binaries(t)
	x := &e2e{dir: t.TempDir()}
	x.srv = startServer(t, serverBin, "")
	if x.srv.credential == "" {
		t.Fatal("the server printed no bootstrap credential")
	}
	x.cli = &binCLI{t: t, bin: cliBin, dir: x.dir, env: []string{serverEnv + "=" + x.srv.url}}
	x.owner, x.ownerDID = x.keygen(t, "owner")
	x.agent, x.agentDID = x.keygen(t, "agent")
	x.credential = filepath.Join(x.dir, "bootstrap.cred")
	if err := os.WriteFile(x.credential, []byte(x.srv.credential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return x
}

func (x *e2e) keygen(t *testing.T, name string) (string, string) {
	t.Helper()
	path := filepath.Join(x.dir, name+".json")
	m := x.cli.json("keygen", "--plain", "--out", path, "--name", name)
	return path, m["did"].(string)
}

// TestAdminEndToEnd runs the operator's whole path against a live
// examples/server with the CLI binary: bootstrap (and the credential
// spent), whoami, principals, capabilities issued, used by an agent,
// listed and revoked, budgets, a session, recovery making a second owner
// (once), and the audit log verified.
func TestAdminEndToEnd(t *testing.T) {
	x := newE2E(t)
	cli := x.cli
	as := []string{"--wallet", x.owner}

	// Before bootstrap the owner's wallet is nobody.
	if r := cli.must(exitFailed, append([]string{"admin", "whoami"}, as...)...); !strings.Contains(r.stderr, "401") {
		t.Fatalf("whoami before bootstrap: %q", r.stderr)
	}
	r := cli.must(exitOK, "admin", "bootstrap", "--credential-file", x.credential, "--wallet", x.owner)
	if !strings.Contains(r.stdout, x.ownerDID) || strings.Contains(r.stdout+r.stderr, x.srv.credential) {
		t.Fatalf("bootstrap: %q %q", r.stdout, r.stderr)
	}
	// The bootstrap credential is spent: refused for another identity too.
	r = cli.must(exitFailed, "admin", "bootstrap", "--credential-file", x.credential, "--did", x.agentDID)
	if !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "AUTH_INVALID") {
		t.Fatalf("second bootstrap: %q", r.stderr)
	}
	who := cli.json(append([]string{"admin", "whoami"}, as...)...)
	if who["did"] != x.ownerDID || who["role"] != "owner" || who["auth_mode"] != "attested" {
		t.Fatalf("whoami %v", who)
	}

	// Register the agent and list it.
	cli.must(exitOK, append(append([]string{"admin", "principals", "add"}, as...), "--team", "research", x.agentDID)...)
	found := false
	for _, p := range items(t, cli.json(append([]string{"admin", "principals", "list", "--all"}, as...)...)) {
		found = found || p["principal_id"] == x.agentDID || p["did"] == x.agentDID
	}
	if !found {
		t.Fatal("the registered agent is not listed")
	}
	if r := cli.must(exitOK, append([]string{"admin", "principals", "list"}, as...)...); !strings.Contains(r.stdout, x.agentDID) || !strings.Contains(r.stdout, "research") {
		t.Fatalf("principals table %q", r.stdout)
	}

	// Issue a capability; the agent uses it.
	tokFile := filepath.Join(x.dir, "agent.tok")
	issued := cli.json(append(append([]string{"admin", "capabilities", "issue"}, as...), "--subject", x.agentDID, "--grant", "search:query", "--expires", "1h", "--out", tokFile)...)
	hash, _ := issued["capability_hash"].(string)
	if len(hash) != 64 || issued["token"] != nil {
		t.Fatalf("issue %v", issued)
	}
	d := cli.json("authorize", "--wallet", x.agent, "--tool", "search", "--action", "query", tokFile)
	if d["allowed"] != true || d["capability_hash"] != hash {
		t.Fatalf("decision %v", d)
	}
	if r := cli.must(exitFailed, "authorize", "--wallet", x.agent, "--tool", "search", "--action", "delete", tokFile); !strings.Contains(r.stdout, "denied") {
		t.Fatalf("denied decision %q", r.stdout)
	}

	// Listed (never with the token), then revoked.
	caps := items(t, cli.json(append([]string{"admin", "capabilities", "list", "--subject", x.agentDID}, as...)...))
	if len(caps) != 1 || caps[0]["capability_hash"] != hash || caps[0]["revoked"] != false || caps[0]["token"] != nil {
		t.Fatalf("capabilities %v", caps)
	}
	cli.must(exitOK, append(append([]string{"admin", "capabilities", "revoke"}, as...), hash)...)
	if c := cli.json(append(append([]string{"admin", "capabilities", "get"}, as...), hash)...); c["revoked"] != true {
		t.Fatalf("after revoke %v", c)
	}
	if revs := items(t, cli.json(append([]string{"admin", "revocations", "list"}, as...)...)); len(revs) != 1 || revs[0]["capability_hash"] != hash || revs[0]["revoked_by"] != x.ownerDID {
		t.Fatalf("revocations %v", revs)
	}
	d = decodeJSON(t, cli.must(exitFailed, "authorize", "--json", "--wallet", x.agent, "--tool", "search", "--action", "query", tokFile).stdout)
	if d["allowed"] != false {
		t.Fatalf("revoked capability allowed: %v", d)
	}

	// Decision statistics: the three decisions above, on this replica.
	st := cli.json(append([]string{"admin", "stats", "--window", "15m"}, as...)...)
	dec, _ := st["decisions"].(map[string]any)
	bySurface, _ := dec["by_surface"].(map[string]any)
	if n, _ := bySurface["kernel.authorize"].(float64); n < 3 || st["window_seconds"] != float64(900) {
		t.Fatalf("stats %v", st)
	}
	if r := cli.must(exitOK, append([]string{"admin", "stats"}, as...)...); !strings.Contains(r.stdout, "kernel.authorize") {
		t.Fatalf("stats text %q", r.stdout)
	}

	// Budgets.
	cli.must(exitOK, append(append([]string{"admin", "budgets", "set"}, as...), "--limit-usd", "5.00", "--mode", "hard", "--period", "daily", "team:research")...)
	b := cli.json(append(append([]string{"admin", "budgets", "get"}, as...), "team:research")...)
	if fmt.Sprint(b["limit_usd"]) != "5.00" && fmt.Sprint(b["limit_usd"]) != "5" {
		t.Fatalf("budget %v", b)
	}

	// A viewer session: reads, may not write, cannot mint sessions.
	sess := cli.json(append([]string{"admin", "session", "--ttl", "10m", "--role", "viewer"}, as...)...)
	tok, _ := sess["token"].(string)
	if !strings.HasPrefix(tok, sessionPrefix) || sess["dashboard_url"] != x.srv.url+"/ui/#session="+tok {
		t.Fatalf("session %v", sess)
	}
	viewer := &binCLI{t: t, bin: cli.bin, dir: cli.dir, env: append(cli.env, adminSessionEnv+"="+tok)}
	if w := viewer.json("admin", "whoami"); w["auth_mode"] != "session" || w["role"] != "viewer" {
		t.Fatalf("session whoami %v", w)
	}
	if r := viewer.must(exitFailed, "admin", "principals", "remove", x.agentDID); !strings.Contains(r.stderr, "403") {
		t.Fatalf("viewer write: %q", r.stderr)
	}
	viewer.must(exitOK, "admin", "session", "revoke")
	if r := viewer.must(exitFailed, "admin", "whoami"); !strings.Contains(r.stderr, "401") {
		t.Fatalf("revoked session: %q", r.stderr)
	}

	// RBAC roles and bindings; another admin identity, its role changed, removed.
	cli.must(exitOK, append(append([]string{"admin", "roles", "put"}, as...), "--permission", "search:query", "searcher")...)
	if rs := items(t, cli.json(append([]string{"admin", "roles", "list"}, as...)...)); len(rs) == 0 {
		t.Fatal("no roles listed")
	}
	cli.must(exitOK, append(append([]string{"admin", "bindings", "put"}, as...), "--principal", x.agentDID, "--role", "searcher", "b-agent")...)
	if bs := items(t, cli.json(append([]string{"admin", "bindings", "list", "--principal", x.agentDID}, as...)...)); len(bs) != 1 || bs[0]["role_id"] != "searcher" {
		t.Fatalf("bindings %v", bs)
	}
	_, helperDID := x.keygen(t, "helper")
	cli.must(exitOK, append(append([]string{"admin", "identities", "set-role"}, as...), helperDID, "auditor")...)
	if id := cli.json(append(append([]string{"admin", "identities", "get"}, as...), helperDID)...); id["role"] != "auditor" || id["created_by"] != x.ownerDID {
		t.Fatalf("identity %v", id)
	}
	cli.must(exitOK, append(append([]string{"admin", "identities", "remove"}, as...), helperDID)...)
	// The last owner stays.
	if r := cli.must(exitFailed, append(append([]string{"admin", "identities", "set-role"}, as...), x.ownerDID, "viewer")...); !strings.Contains(r.stderr, "409") {
		t.Fatalf("last owner demoted: %q", r.stderr)
	}

	// A2A metadata: no session or group yet; an unknown id is NOT_FOUND.
	for _, kind := range []string{"sessions", "groups"} {
		if l := items(t, cli.json(append([]string{"admin", "a2a", kind, "--all"}, as...)...)); len(l) != 0 {
			t.Fatalf("a2a %s: %v", kind, l)
		}
		if r := cli.must(exitFailed, append(append([]string{"admin", "a2a", kind}, as...), "no-such-id")...); !strings.Contains(r.stderr, "404") {
			t.Fatalf("a2a %s no-such-id: %q", kind, r.stderr)
		}
	}
	cli.must(exitOK, append([]string{"admin", "sessions"}, as...)...)

	// Configuration documents: one written over HTTP, then listed, read
	// and its versions listed with the CLI.
	ownerSess := cli.json(append([]string{"admin", "session"}, as...)...)
	put, _ := http.NewRequest(http.MethodPut, x.srv.url+"/v1/config/budget/team-a",
		strings.NewReader(`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":25}`))
	put.Header.Set("Authorization", "Bearer "+ownerSess["token"].(string))
	put.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(put); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("config PUT: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	docs := items(t, cli.json(append([]string{"admin", "config", "list"}, as...)...))
	if len(docs) != 1 || docs[0]["kind"] != "budget" || docs[0]["name"] != "team-a" {
		t.Fatalf("config list %v", docs)
	}
	if doc := cli.json(append(append([]string{"admin", "config", "get"}, as...), "budget", "team-a")...); doc["version"] != float64(1) {
		t.Fatalf("config get %v", doc)
	}
	if vs := items(t, cli.json(append(append([]string{"admin", "config", "versions", "--all"}, as...), "budget", "team-a")...)); len(vs) != 1 {
		t.Fatalf("config versions %v", vs)
	}

	// Recovery: offline, with the data directory's master key; makes a
	// second owner even though one exists; works once.
	rec := cli.json("admin", "recover", "--data-dir", x.srv.dataDir)
	recFile := filepath.Join(x.dir, "recovery.cred")
	if err := os.WriteFile(recFile, []byte(rec["credential"].(string)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	owner2, owner2DID := x.keygen(t, "owner2")
	cli.must(exitOK, "admin", "bootstrap", "--credential-file", recFile, "--wallet", owner2)
	if w := cli.json("admin", "whoami", "--wallet", owner2); w["role"] != "owner" {
		t.Fatalf("recovered owner %v", w)
	}
	if r := cli.must(exitFailed, "admin", "bootstrap", "--credential-file", recFile, "--did", x.agentDID); !strings.Contains(r.stderr, "401") {
		t.Fatalf("recovery credential reused: %q", r.stderr)
	}
	ids := items(t, cli.json(append([]string{"admin", "identities", "list"}, as...)...))
	roles := map[string]any{}
	for _, id := range ids {
		roles[id["did"].(string)] = id["role"]
	}
	if len(ids) != 2 || roles[x.ownerDID] != "owner" || roles[owner2DID] != "owner" {
		t.Fatalf("identities %v", ids)
	}

	// Every action above is in the audit log, which verifies.
	var ident struct {
		Key string `json:"audit_verifier_key"`
	}
	resp, err := http.Get(x.srv.url + "/v1/identity")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&ident)
	resp.Body.Close()
	owner := cli.json(append([]string{"admin", "session"}, as...)...)
	auditor := &binCLI{t: t, bin: cli.bin, dir: cli.dir, env: append(cli.env, "TALOS_ADMIN_TOKEN="+owner["token"].(string))}
	if r := auditor.must(exitOK, "audit", "verify", "--no-state", "--log-key", ident.Key, x.srv.url+"/tlog/"); !strings.Contains(r.stdout, "size") {
		t.Fatalf("audit verify: %q %q", r.stdout, r.stderr)
	}
}

// TestAdminWatchTmux runs `talos admin watch` in a real terminal (a
// detached tmux session), makes a decision happen with an attested
// POST /v1/authorize, waits for its line on the screen, then presses
// Ctrl-C and checks that the command exited 0.
func TestAdminWatchTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("TALOS_REQUIRE_SERVICES") == "1" {
			t.Fatal("tmux is required (TALOS_REQUIRE_SERVICES=1) and not installed")
		}
		t.Skip("tmux not installed")
	}
	x := newE2E(t)
	cli := x.cli
	as := []string{"--wallet", x.owner}
	cli.must(exitOK, "admin", "bootstrap", "--credential-file", x.credential, "--wallet", x.owner)
	cli.must(exitOK, append(append([]string{"admin", "principals", "add"}, as...), "--team", "research", x.agentDID)...)
	tokFile := filepath.Join(x.dir, "agent.tok")
	cli.must(exitOK, append(append([]string{"admin", "capabilities", "issue"}, as...), "--subject", x.agentDID, "--grant", "search:query", "--out", tokFile)...)

	sock := filepath.Join(x.dir, "tmux.sock")
	session := "talos-watch"
	codeFile := filepath.Join(x.dir, "watch.code")
	tm := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	script := fmt.Sprintf("trap : INT; cd %s && %s=%s %s=%s %s admin watch --surface kernel.authorize; echo $? > %s; sleep 600",
		shQuote(x.dir), serverEnv, shQuote(x.srv.url), adminWalletEnv, shQuote(x.owner), shQuote(cli.bin), shQuote(codeFile))
	if out, err := tm("new-session", "-d", "-x", "200", "-y", "50", "-s", session, "sh", "-c", script); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	t.Cleanup(func() { tm("kill-server") })
	screen := func() string {
		out, _ := tm("capture-pane", "-p", "-t", session)
		return out
	}
	waitFor := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if s := screen(); ok(s) {
				return s
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("waiting for %s; the screen:\n%s\nserver log:\n%s", what, screen(), x.srv.stderr.String())
		return ""
	}
	// The header is printed once the server accepted the stream.
	waitFor("the watch to connect", func(s string) bool { return strings.Contains(s, "SURFACE") })
	cli.must(exitOK, "authorize", "--wallet", x.agent, "--tool", "search", "--action", "query", tokFile)
	s := waitFor("the decision's line", func(s string) bool {
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "kernel.authorize") && strings.Contains(l, x.agentDID) && strings.Contains(l, "success") {
				return true
			}
		}
		return false
	})
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "kernel.authorize") {
			t.Logf("on screen: %s", strings.TrimSpace(l))
		}
	}
	if strings.Contains(s, "admin.") {
		t.Errorf("the surface filter let other events through:\n%s", s)
	}
	if out, err := tm("send-keys", "-t", session, "C-c"); err != nil {
		t.Fatalf("send-keys: %v %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(codeFile)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Fatalf("admin watch exited %s after Ctrl-C; the screen:\n%s", code, screen())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin watch did not exit after Ctrl-C; the screen:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestREADMEWalkthrough runs the README's "Walkthrough with the CLI"
// block, exactly as written, with sh -e against a live server: the
// talos binary on PATH, the printed credential in bootstrap.cred, sealed
// wallets opened with $TALOS_PASSPHRASE.
func TestREADMEWalkthrough(t *testing.T) {
	serverBin, cliBin := binaries(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the walkthrough uses curl")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "<!-- cli-test -->\n```sh\n")
	if !ok {
		t.Fatal("README has no <!-- cli-test --> block")
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal("the README's cli-test block does not end")
	}
	srv := startServer(t, serverBin, "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap.cred"), []byte(srv.credential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-e", "-c", block)
	cmd.Dir = dir
	cmd.Env = cleanEnv(serverEnv+"="+srv.url, passEnv+"=walkthrough passphrase",
		"PATH="+filepath.Dir(cliBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s\nserver log:\n%s", err, out, srv.stderr.String())
	}
	for _, want := range []string{"allowed:", "role:      owner", "denied: revoked", "verified"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), srv.credential) {
		t.Error("the walkthrough printed the bootstrap credential")
	}
}
