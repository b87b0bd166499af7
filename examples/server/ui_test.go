package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/identity"
)

// browserTools finds node, Debian's chromium and the test runner's
// playwright-core (ui/node_modules, installed by `npm ci` in ui/). A
// missing tool fails the test under TALOS_REQUIRE_BROWSER=1 (CI) and skips
// it otherwise.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("TALOS_REQUIRE_BROWSER") == "1" {
			t.Fatalf("TALOS_REQUIRE_BROWSER=1 but %s", what)
		}
		t.Skipf("browser test skipped: %s (set TALOS_REQUIRE_BROWSER=1 to fail instead)", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(chromium + " is missing (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join("ui", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("ui/node_modules/playwright-core is missing (run `npm ci` in examples/server/ui)")
	}
	return node, chromium
}

// artifactsDir is where the browser test leaves its screenshots and the
// exported bundle: $TALOS_TEST_ARTIFACTS/<test name> when set (kept),
// else a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("TALOS_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDashboardHeaders(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/style.css", "/ui/pages/audit.js", "/ui/verify.js"} {
		resp := ts.do(t, "GET", path, "", nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		h := resp.Header
		if h.Get("Content-Security-Policy") != uiCSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", path, h)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("GET %s sets a cookie", path)
		}
		ct := h.Get("Content-Type")
		switch {
		case strings.HasSuffix(path, ".js") && !strings.HasPrefix(ct, "text/javascript"),
			strings.HasSuffix(path, ".css") && !strings.HasPrefix(ct, "text/css"),
			strings.HasSuffix(path, "/") && !strings.HasPrefix(ct, "text/html"):
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		// no third-party code: nothing is loaded from another origin
		if strings.Contains(string(body), "http://") && strings.HasSuffix(path, ".html") || strings.Contains(string(body), "https://") {
			t.Errorf("GET %s names another origin", path)
		}
	}
	resp := ts.do(t, "GET", "/ui", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// a missing asset, a directory (no listing) and index.html by name
	// are the contract's 404
	for _, path := range []string{"/ui/nothing.js", "/ui/pages/", "/ui/pages", "/ui/index.html", "/ui/.gitignore"} {
		var eb errBody
		if st := decode(t, ts.do(t, "GET", path, "", nil), &eb); st != http.StatusNotFound || eb.Code != string(contracts.CodeNotFound) {
			t.Errorf("GET %s: %d %+v", path, st, eb)
		}
	}
}

// dashboardRoutes are the admin API routes the dashboard reads that came
// from other changes than the dashboard's: each must be mounted (a 404
// here names the route instead of failing somewhere in the browser).
var dashboardRoutes = []string{"/v1/admin/stats?window=15m", "/v1/audit/stream", "/v1/admin/a2a/sessions", "/v1/admin/a2a/groups", "/v1/config"}

// requireDashboardRoutes fails the test unless every dashboardRoutes
// answers 200 to the owner's session.
func requireDashboardRoutes(t *testing.T, ts *testServer) {
	t.Helper()
	for _, path := range dashboardRoutes {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, "GET", ts.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ts.cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("GET %s: %v", path, err)
		}
		// the headers are enough (the stream would go on): cancel, then close
		cancel()
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d: the dashboard reads this route", path, resp.StatusCode)
		}
	}
}

// TestDashboardBrowser runs the dashboard in headless Chromium against a
// real server (ui/e2e/run.mjs): sign-in with a session from the URL
// fragment, a decision appearing live, issuing and revoking a capability,
// editing a budget, an inclusion proof verified in the browser and a
// tampered entry refused, consistency of two checkpoints, a bundle export,
// every page at 1280×800 and 390×844 with labelled controls, keyboard
// paths and no console error. The Go side then checks the server's state
// the browser changed.
func TestDashboardBrowser(t *testing.T) {
	node, chromium := browserTools(t)
	ts := newTestServer(t, testConfig(t))
	ts.serve(t)

	// Seed: two agents of two teams, team and key budgets, a capability
	// used once allowed and once denied, and two versions of a document.
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	putBudget(t, ts, "team:team-a", "50.00", "hard")
	putBudget(t, ts, "team:team-b", "10.00", "warn")
	putBudget(t, ts, "key:"+alice.did, "5.00", "hard")
	tok := issue(t, ts, alice.did, false, grant("files", "read"))
	if d := authorize(t, alice, tok.Token, "files", "read"); !d.Allowed {
		t.Fatalf("seed decision denied: %+v", d)
	}
	if d := authorize(t, alice, tok.Token, "files", "write"); d.Allowed {
		t.Fatalf("seed write allowed: %+v", d)
	}
	for _, doc := range []string{budgetA, strings.Replace(budgetA, "12.5", "20", 1)} {
		if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(doc)), nil); st != http.StatusCreated {
			t.Fatalf("PUT config: %d", st)
		}
	}

	requireDashboardRoutes(t, ts)

	// An A2A session between alice and bob with one frame whose plaintext
	// the dashboard must never show.
	const secretText = "dashboard-must-not-show-this-plaintext"
	ap, _, sessionID := openSession(t, alice, bob)
	var sent map[string]any
	if st := alice.call("POST", "/a2a/sessions/"+sessionID+"/frames", sendBody(ap.frame(sessionID, secretText)), &sent); st != http.StatusCreated {
		t.Fatalf("A2A frame: %d %v", st, sent)
	}

	// A delegation chain: alice narrows her capability to bob.
	parent, err := capability.Parse(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	child, err := capability.Delegate(parent, alice.w.Signer(), identity.MustParseDID(bob.did), []capability.Grant{grant("files", "read")}, time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	chain := capability.Chain{parent, child}.Encode()

	// A well-formed verifier key of another log with this log's name: a
	// proof must not verify under it when the operator pins it.
	logName, _, _ := strings.Cut(newAuditor(t, ts).vkey, "+")
	impostor, err := identity.GenerateWallet("impostor")
	if err != nil {
		t.Fatal(err)
	}
	otherLogKey, err := audit.VerifierKey(logName, impostor.PublicKey())
	if err != nil {
		t.Fatal(err)
	}

	// The browser gets a session of its own (it signs out at the end)
	// and one more that it signs in with by pasting it.
	browserSession, pasted := ts.owner.session(t, ts, ""), ts.owner.session(t, ts, "")
	dir := artifactsDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "run.mjs"))
	cmd.Dir = "ui"
	cmd.Env = append(os.Environ(),
		"TALOS_UI_URL="+ts.url+"/ui/",
		"TALOS_UI_SESSION="+browserSession,
		"TALOS_UI_ARTIFACTS="+dir,
		"TALOS_UI_AGENT="+alice.did,
		"TALOS_UI_TEAM=team:team-a",
		"TALOS_UI_CHAIN="+chain,
		"TALOS_UI_CHAIN_LEAF="+bob.did,
		"TALOS_UI_SESSION2="+pasted,
		"TALOS_UI_A2A_SESSION="+sessionID,
		"TALOS_UI_SECRET="+secretText,
		"TALOS_UI_OTHER_LOG_KEY="+otherLogKey,
		"CHROMIUM="+chromium,
	)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "TRIGGER decision"):
			if d := authorize(t, alice, tok.Token, "files", "read"); !d.Allowed {
				t.Errorf("live decision denied: %+v", d)
			}
			fmt.Fprintln(stdin, "ok")
		case strings.HasPrefix(line, "TRIGGER revoke-pasted"):
			if st := decode(t, ts.do(t, "DELETE", "/v1/admin/sessions/current", pasted, nil), nil); st/100 != 2 {
				t.Errorf("revoke the pasted session: %d", st)
			}
			fmt.Fprintln(stdin, "ok")
		case strings.HasPrefix(line, "RESULT "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "RESULT "), " ")
			results[k] = v
		default:
			t.Logf("e2e: %s", line)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	t.Logf("e2e output:\n%s", stderr.String())
	t.Logf("screenshots in %s", dir)
	if werr != nil {
		t.Fatalf("dashboard e2e failed: %v", werr)
	}

	for _, k := range []string{"live_decision", "stats", "issued_hash", "revoked_hash", "chain", "budget_limit", "verified_index", "pinned_key",
		"tampered", "consistency", "bundle", "a2a_session", "config_diff", "signed_out", "pasted_sign_in", "revoked_session"} {
		if results[k] == "" {
			t.Errorf("the e2e run reported no %s", k)
		}
	}
	// What the browser did, checked on the server.
	var c admin.IssuedCapability
	if st := decode(t, ts.do(t, "GET", "/v1/capabilities/"+results["issued_hash"], ts.cred, nil), &c); st != http.StatusOK || !c.Revoked || c.Subject != alice.did || !c.ReadOnly {
		t.Errorf("the capability the browser issued and revoked: %d %+v", st, c)
	}
	if u := getBudget(t, ts, "team:team-a", "team-a"); u.Limit != "75.5" && u.Limit != "75.50" {
		t.Errorf("the budget the browser edited: %+v", u)
	}
	if st := decode(t, ts.do(t, "GET", "/v1/admin/whoami", browserSession, nil), nil); st != http.StatusUnauthorized {
		t.Errorf("the browser's session after sign-out: %d", st)
	}
	// The bundle the browser exported verifies offline with the log key.
	raw, err := os.ReadFile(results["bundle"])
	if err != nil {
		t.Fatal(err)
	}
	au := newAuditor(t, ts)
	v, err := note.NewVerifier(au.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if evs, _, err := audit.VerifyBundle(raw, v); err != nil || len(evs) == 0 {
		t.Errorf("exported bundle: %d events, %v", len(evs), err)
	}
	for _, name := range []string{"overview", "audit", "agents", "budgets", "a2a", "config"} {
		for _, size := range []string{"1280x800", "390x844"} {
			if fi, err := os.Stat(filepath.Join(dir, name+"-"+size+".png")); err != nil || fi.Size() == 0 {
				t.Errorf("screenshot %s-%s: %v", name, size, err)
			}
		}
	}
}

// TestDashboardVerifierVectors checks the dashboard's verifier
// (ui/static/verify.js, run by node) against the audit package: the signed
// checkpoint of a log at every size from 1 to 21, every inclusion proof
// and every consistency proof between them verify, and tampered entries,
// proofs, roots and checkpoints are refused.
func TestDashboardVerifierVectors(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("TALOS_REQUIRE_BROWSER") == "1" {
			t.Fatal("TALOS_REQUIRE_BROWSER=1 but node is not on PATH")
		}
		t.Skip("node is not on PATH (set TALOS_REQUIRE_BROWSER=1 to fail instead)")
	}
	ctx := t.Context()
	// Fixed keys, times and ids: the vectors (and the mutations the node
	// side derives from them) are the same on every run.
	wallet, err := identity.WalletFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	const origin = "talos.test/dashboard-vectors"
	signer, err := audit.NewNoteSigner(origin, wallet.Signer())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier(origin, wallet.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := audit.VerifierKey(origin, wallet.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.WalletFromSeed(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := audit.VerifierKey(origin, other.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	ids := 0
	builder, err := audit.NewEventBuilder(audit.BuilderConfig{
		Now: func() time.Time { return time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC) },
		NewID: func() string {
			ids++
			return fmt.Sprintf("01945533-3158-7c85-992d-%012x", ids)
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	type proof struct {
		Index    uint64   `json:"index"`
		OldSize  uint64   `json:"old_size"`
		TreeSize uint64   `json:"tree_size"`
		Proof    []string `json:"proof"`
	}
	var v struct {
		VerifierKey      string   `json:"verifier_key"`
		OtherVerifierKey string   `json:"other_verifier_key"`
		Checkpoints      []string `json:"checkpoints"`
		BadCheckpoints   []string `json:"bad_checkpoints"`
		Entries          []string `json:"entries"`
		Inclusion        []proof  `json:"inclusion"`
		Consistency      []proof  `json:"consistency"`
	}
	v.VerifierKey, v.OtherVerifierKey = vkey, otherKey
	const n = 21
	for i := range n {
		req := httptest.NewRequest("POST", "/v1/authorize", nil)
		ev, err := builder.Build(req, audit.Decision{RequestID: fmt.Sprintf("req-%d", i), SurfaceID: "kernel.authorize", TemplatePath: "/v1/authorize", Status: 200, Principal: audit.BearerPrincipal(fmt.Sprintf("p-%d", i), "t")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != uint64(i+1) {
			t.Fatalf("checkpoint size %d after %d appends", cp.Size, i+1)
		}
		v.Checkpoints = append(v.Checkpoints, string(cp.Note))
		entry, err := l.Entry(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		v.Entries = append(v.Entries, contracts.EncodeBase64URL(entry))
	}
	for size := uint64(1); size <= n; size++ {
		for i := range size {
			p, err := l.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			v.Inclusion = append(v.Inclusion, proof{Index: i, TreeSize: size, Proof: hashStrings(p)})
		}
		for old := uint64(1); old <= size; old++ {
			p, err := l.ConsistencyProof(ctx, old, size)
			if err != nil {
				t.Fatal(err)
			}
			v.Consistency = append(v.Consistency, proof{OldSize: old, TreeSize: size, Proof: hashStrings(p)})
		}
	}
	// Checkpoints that must not verify: another size under the same
	// signature, a flipped signature byte, no signature, another origin.
	good := v.Checkpoints[4]
	body, sigs, _ := strings.Cut(good, "\n\n")
	lines := strings.SplitN(body, "\n", 3)
	sig := []byte(sigs)
	sig[len(sig)-4] ^= 1
	v.BadCheckpoints = []string{
		lines[0] + "\n6\n" + lines[2] + "\n\n" + sigs,
		body + "\n\n" + string(sig),
		body + "\n",
		"other.origin\n" + lines[1] + "\n" + lines[2] + "\n\n" + sigs,
		strings.Replace(good, "\n\n", "\n\n\n", 1),
	}
	for _, bad := range v.BadCheckpoints {
		if _, err := audit.VerifyCheckpoint([]byte(bad), vkey); err == nil {
			t.Fatalf("the audit package accepts a bad vector: %q", bad)
		}
	}

	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vectors.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "verify_vectors.mjs"), path)
	cmd.Dir = "ui"
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("verify.js: %v", err)
	}
	if !strings.Contains(string(out), " 0 failed") {
		t.Fatal("verify.js reported failures")
	}
}

func hashStrings(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}
