package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// seenRequest is what the fake admin server recorded of one request.
type seenRequest struct {
	Method, Path, Query string
	Body                string // canonical JSON, "" when empty
	DID                 string // the verified attestation's DID, "" if not attested
	Bearer              string
	LastEventID         string
}

// fakeAdmin is an httptest server that verifies every attestation with
// identity.AttestationVerifier (opcode "admin", did:key key ids, a nonce
// store) exactly as a server does, records each request and answers with
// the handler's reply.
type fakeAdmin struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []seenRequest
	reply func(w http.ResponseWriter, r *http.Request, s seenRequest)
}

func newFakeAdmin(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, s seenRequest)) *fakeAdmin {
	t.Helper()
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return adminOpcode, nil },
		Keys:   identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAdmin{reply: reply}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, LastEventID: r.Header.Get("Last-Event-ID")}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			s.Bearer = tok
		}
		if r.Header.Get("X-Talos-Signature") != "" {
			a, err := v.Verify(r)
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(contracts.New(contracts.CodeAuthInvalid, "bad attestation: "+err.Error()))
				return
			}
			s.DID = a.DID.String()
		}
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			c, err := contracts.Canonicalize(body)
			if err != nil {
				t.Errorf("%s %s: body is not JSON: %q", r.Method, r.URL.Path, body)
			}
			s.Body = string(c)
		}
		f.mu.Lock()
		f.seen = append(f.seen, s)
		f.mu.Unlock()
		f.reply(w, r, s)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAdmin) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

func (f *fakeAdmin) last(t *testing.T) seenRequest {
	t.Helper()
	s := f.requests()
	if len(s) == 0 {
		t.Fatal("no request reached the server")
	}
	return s[len(s)-1]
}

func writeJSONReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// TestAdminRequests: every admin command sends the request the contract
// names, attested with the wallet's key under opcode "admin".
func TestAdminRequests(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t)
	wallet, did := keygen(t, c, dir, "admin", true)
	agent := mustWallet(t).DID().String()
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		switch {
		case r.Method == http.MethodGet && (s.Path == "/v1/principals" || s.Path == "/v1/capabilities" || s.Path == "/v1/rbac/bindings" ||
			s.Path == "/v1/admin/identities" || s.Path == "/v1/rbac/roles" || s.Path == "/v1/capabilities/revocations" ||
			s.Path == "/v1/budgets" || s.Path == "/v1/admin/a2a/sessions" || s.Path == "/v1/admin/a2a/groups" || s.Path == "/v1/config"):
			writeJSONReply(w, 200, map[string]any{"items": []any{}})
		case s.Path == "/v1/capabilities" && r.Method == http.MethodPost:
			writeJSONReply(w, 201, map[string]any{"token": "tok", "capability_hash": strings.Repeat("ab", 32), "exp": 1900000000})
		case s.Path == "/v1/admin/sessions":
			writeJSONReply(w, 201, map[string]any{"token": sessionPrefix + strings.Repeat("s", 43), "expires_at": "2026-12-03T12:00:00Z", "did": s.DID, "role": "viewer"})
		case strings.HasSuffix(s.Path, "/versions"):
			writeJSONReply(w, 200, map[string]any{"kind": "budget", "name": "team-a", "versions": []any{map[string]any{"version": 1, "digest": "d"}}})
		default:
			writeJSONReply(w, 200, map[string]any{"ok": true})
		}
	})
	hash := strings.Repeat("0f", 32)
	cases := []struct {
		args        []string
		method      string
		path, query string
		body        string
	}{
		{[]string{"admin", "whoami"}, "GET", "/v1/admin/whoami", "", ""},
		{[]string{"admin", "identities", "list", "--limit", "7"}, "GET", "/v1/admin/identities", "limit=7", ""},
		{[]string{"admin", "identities", "get", agent}, "GET", "/v1/admin/identities/" + agent, "", ""},
		{[]string{"admin", "identities", "set-role", agent, "viewer"}, "PUT", "/v1/admin/identities/" + agent, "", `{"role":"viewer"}`},
		{[]string{"admin", "identities", "remove", agent}, "DELETE", "/v1/admin/identities/" + agent, "", ""},
		{[]string{"admin", "session", "--ttl", "20m", "--role", "viewer"}, "POST", "/v1/admin/sessions", "", `{"role":"viewer","ttl_seconds":1200}`},
		{[]string{"admin", "principals", "list", "--team", "research"}, "GET", "/v1/principals", "team=research", ""},
		{[]string{"admin", "principals", "get", agent}, "GET", "/v1/principals/" + agent, "", ""},
		{[]string{"admin", "principals", "add", "--team", "research", agent}, "PUT", "/v1/principals/" + agent, "", `{"team_id":"research"}`},
		{[]string{"admin", "principals", "remove", agent}, "DELETE", "/v1/principals/" + agent, "", ""},
		{[]string{"admin", "roles", "list"}, "GET", "/v1/rbac/roles", "", ""},
		{[]string{"admin", "roles", "get", "reader"}, "GET", "/v1/rbac/roles/reader", "", ""},
		{[]string{"admin", "roles", "put", "--permission", "search:query", "--permission", "files:*", "reader"}, "PUT", "/v1/rbac/roles/reader", "", `{"permissions":["search:query","files:*"]}`},
		{[]string{"admin", "bindings", "list", "--principal", agent, "--role", "reader"}, "GET", "/v1/rbac/bindings", "principal_id=" + strings.ReplaceAll(agent, ":", "%3A") + "&role_id=reader", ""},
		{[]string{"admin", "bindings", "get", "b1"}, "GET", "/v1/rbac/bindings/b1", "", ""},
		{[]string{"admin", "bindings", "put", "--principal", agent, "--role", "reader", "--scope-attr", "team=research", "b1"}, "PUT", "/v1/rbac/bindings/b1", "",
			`{"principal_id":"` + agent + `","role_id":"reader","scope":{"attributes":{"team":"research"},"scope_type":"global"}}`},
		{[]string{"admin", "capabilities", "list", "--subject", agent, "--revoked", "false"}, "GET", "/v1/capabilities", "revoked=false&subject=" + strings.ReplaceAll(agent, ":", "%3A"), ""},
		{[]string{"admin", "capabilities", "get", hash}, "GET", "/v1/capabilities/" + hash, "", ""},
		{[]string{"admin", "capabilities", "issue", "--subject", agent, "--grant", "search:query,list", "--expires", "2h"}, "POST", "/v1/capabilities", "",
			`{"expires_in_seconds":7200,"grants":[{"actions":["query","list"],"tool":"search"}],"subject":"` + agent + `"}`},
		{[]string{"admin", "capabilities", "revoke", hash}, "POST", "/v1/capabilities/revocations", "", `{"capability_hash":"` + hash + `"}`},
		{[]string{"admin", "capabilities", "revoke", "--nonce", "n-1", "--until", "2030-01-01T00:00:00Z"}, "POST", "/v1/capabilities/revocations", "", `{"nonce":"n-1","until":1893456000}`},
		{[]string{"admin", "revocations", "list"}, "GET", "/v1/capabilities/revocations", "", ""},
		{[]string{"admin", "budgets", "list"}, "GET", "/v1/budgets", "", ""},
		{[]string{"admin", "budgets", "get", "team:research"}, "GET", "/v1/budgets/team:research", "", ""},
		{[]string{"admin", "budgets", "set", "--limit-usd", "5.00", "--mode", "hard", "--period", "daily", "team:research"}, "PUT", "/v1/budgets/team:research", "",
			`{"limit_usd":"5.00","mode":"hard","period":"daily"}`},
		{[]string{"admin", "sessions"}, "GET", "/v1/admin/a2a/sessions", "", ""},
		{[]string{"admin", "a2a", "sessions", "s-1"}, "GET", "/v1/admin/a2a/sessions/s-1", "", ""},
		{[]string{"admin", "a2a", "groups"}, "GET", "/v1/admin/a2a/groups", "", ""},
		{[]string{"admin", "config", "list"}, "GET", "/v1/config", "", ""},
		{[]string{"admin", "config", "get", "budget", "team-a"}, "GET", "/v1/config/budget/team-a", "", ""},
		{[]string{"admin", "config", "get", "--version", "3", "budget", "team-a"}, "GET", "/v1/config/budget/team-a/versions/3", "", ""},
		{[]string{"admin", "config", "versions", "--limit", "10", "budget", "team-a"}, "GET", "/v1/config/budget/team-a/versions", "limit=10", ""},
		{[]string{"admin", "stats", "--window", "1h"}, "GET", "/v1/admin/stats", "window=1h", ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args[1:], "_"), func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				nw := len(strings.Fields(cmdName(tc.args)))
				args := append([]string{}, tc.args[:nw]...)
				args = append(args, "--server", f.URL, "--wallet", wallet)
				if asJSON {
					args = append(args, "--json")
				}
				args = append(args, tc.args[nw:]...)
				r := c.must(exitOK, args...)
				s := f.last(t)
				if s.Method != tc.method || s.Path != tc.path || s.Query != tc.query || s.Body != tc.body {
					t.Fatalf("sent %s %s?%s %s\nwant %s %s?%s %s", s.Method, s.Path, s.Query, s.Body, tc.method, tc.path, tc.query, tc.body)
				}
				if s.DID != did || s.Bearer != "" {
					t.Fatalf("attested as %q (bearer %q), want %s", s.DID, s.Bearer, did)
				}
				if asJSON && !json.Valid([]byte(r.stdout)) {
					t.Fatalf("--json output is not JSON: %q", r.stdout)
				}
			}
		})
	}
}

// cmdName returns the command name at the start of args (the longest
// registered one).
func cmdName(args []string) string {
	best := ""
	for _, c := range commands() {
		w := strings.Fields(c.name)
		if len(w) <= len(args) && strings.Join(args[:len(w)], " ") == c.name && len(c.name) > len(best) {
			best = c.name
		}
	}
	return best
}

// TestAdminSessionCredential: a session token goes as the bearer and is
// never printed; a session cannot mint sessions; bad tokens are refused
// before anything is sent.
func TestAdminSessionCredential(t *testing.T) {
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		writeJSONReply(w, 200, map[string]any{"did": "did:key:z6Mkx", "role": "viewer", "auth_mode": "session", "permissions": []any{}})
	})
	c := newCLI(t)
	tok := sessionPrefix + strings.Repeat("A", 43)
	c.env[adminSessionEnv] = tok
	c.env[serverEnv] = f.URL
	r := c.must(exitOK, "admin", "whoami")
	if s := f.last(t); s.Bearer != tok || s.DID != "" {
		t.Fatalf("sent bearer %q did %q", s.Bearer, s.DID)
	}
	if strings.Contains(r.stdout+r.stderr, tok) || !strings.Contains(r.stdout, "session") {
		t.Fatalf("output %q %q", r.stdout, r.stderr)
	}
	c.must(exitOK, "admin", "session", "revoke")
	if s := f.last(t); s.Method != "DELETE" || s.Path != "/v1/admin/sessions/current" || s.Bearer != tok {
		t.Fatalf("revoke sent %+v", s)
	}
	n := len(f.requests())
	c.must(exitUsage, "admin", "session", "revoke", "--wallet", "w.json")
	if r := c.must(exitUsage, "admin", "session"); !strings.Contains(r.stderr, "--wallet") {
		t.Fatalf("session from a session: %q", r.stderr)
	}
	bad := sessionPrefix + "not a token!"
	if r := c.must(exitUsage, "admin", "whoami", "--session", bad); strings.Contains(r.stderr, bad) {
		t.Fatalf("bad token echoed: %q", r.stderr)
	}
	if len(f.requests()) != n {
		t.Fatal("a refused credential was sent")
	}
	if r := c.must(exitUsage, "admin", "whoami", "--session", tok, "--wallet", "w.json"); !strings.Contains(r.stderr, "exclude") {
		t.Fatalf("both credentials: %q", r.stderr)
	}
	delete(c.env, adminSessionEnv)
	c.must(exitUsage, "admin", "whoami")
}

// TestAdminErrors: refusals exit 1 with the contract code (also in
// --json), server failures and unreachable servers exit 3.
func TestAdminErrors(t *testing.T) {
	status := http.StatusForbidden
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		e := contracts.New(contracts.CodeRBACDenied, "viewer may not write admin.principals")
		if status >= 500 {
			e = contracts.New(contracts.CodeInternal, "store unavailable")
		}
		writeJSONReply(w, status, e)
	})
	c := newCLI(t)
	wallet, _ := keygen(t, c, t.TempDir(), "admin", true)
	agent := mustWallet(t).DID().String()
	r := c.must(exitFailed, "admin", "principals", "add", "--server", f.URL, "--wallet", wallet, "--team", "t", agent)
	if !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "RBAC_DENIED") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = c.must(exitFailed, "admin", "principals", "add", "--json", "--server", f.URL, "--wallet", wallet, "--team", "t", agent)
	if m := decodeJSON(t, r.stdout); m["ok"] != false || m["code"] != "RBAC_DENIED" {
		t.Fatalf("--json failure %v", m)
	}
	status = http.StatusServiceUnavailable
	c.must(exitIO, "admin", "principals", "list", "--server", f.URL, "--wallet", wallet)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c.must(exitIO, "admin", "whoami", "--server", dead.URL, "--wallet", wallet)
	c.must(exitUsage, "admin", "whoami", "--server", "ftp://x", "--wallet", wallet)
	c.must(exitUsage, "admin", "principals", "add", "--server", f.URL, "--wallet", wallet, agent) // no --team
	c.must(exitUsage, "admin", "principals", "get", "--server", f.URL, "--wallet", wallet)        // no DID
	c.must(exitUsage, "admin", "principals", "list", "--limit", "501", "--server", f.URL, "--wallet", wallet)
	c.must(exitUsage, "admin", "capabilities", "revoke", "--server", f.URL, "--wallet", wallet) // neither hash nor nonce
	// A sealed wallet without a passphrase source: exit 4, nothing sent.
	c.env[passEnv] = "pass"
	sealed, _ := keygen(t, c, t.TempDir(), "sealed", false)
	delete(c.env, passEnv)
	n := len(f.requests())
	c.must(exitWallet, "admin", "whoami", "--server", f.URL, "--wallet", sealed)
	if len(f.requests()) != n {
		t.Fatal("sent without a wallet")
	}
}

// TestAdminListPagination: --all follows next_cursor; one page prints a
// hint; a server repeating a cursor is stopped.
func TestAdminListPagination(t *testing.T) {
	repeat := false
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		cur := r.URL.Query().Get("cursor")
		var page map[string]any
		switch cur {
		case "":
			page = map[string]any{"items": []any{map[string]any{"principal_id": "did:key:a", "team_id": "t"}}, "next_cursor": "c1"}
		case "c1":
			next := "c2"
			if repeat {
				next = "c1"
			}
			page = map[string]any{"items": []any{map[string]any{"principal_id": "did:key:b", "team_id": "t"}}, "next_cursor": next}
		case "c2":
			page = map[string]any{"items": []any{map[string]any{"principal_id": "did:key:c", "team_id": "t"}}}
		default:
			writeJSONReply(w, 400, contracts.New(contracts.CodeInvalidInput, "invalid cursor"))
			return
		}
		writeJSONReply(w, 200, page)
	})
	c := newCLI(t)
	wallet, _ := keygen(t, c, t.TempDir(), "admin", true)
	base := []string{"admin", "principals", "list", "--server", f.URL, "--wallet", wallet, "--limit", "1"}
	r := c.must(exitOK, base...)
	if !strings.Contains(r.stdout, "did:key:a") || strings.Contains(r.stdout, "did:key:b") || !strings.Contains(r.stderr, "--cursor c1") {
		t.Fatalf("one page: %q %q", r.stdout, r.stderr)
	}
	r = c.must(exitOK, append(base, "--all", "--json")...)
	var p struct {
		Items []struct {
			PrincipalID string `json:"principal_id"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Items) != 3 || p.Items[2].PrincipalID != "did:key:c" || p.NextCursor != nil {
		t.Fatalf("--all: %v %s", err, r.stdout)
	}
	for _, s := range f.requests()[1:] {
		if !strings.Contains(s.Query, "limit=1") {
			t.Fatalf("page without the limit: %q", s.Query)
		}
	}
	r = c.must(exitOK, append(base, "--cursor", "c2")...)
	if !strings.Contains(r.stdout, "did:key:c") {
		t.Fatalf("--cursor: %q", r.stdout)
	}
	c.must(exitFailed, append(base, "--cursor", "zz")...)
	repeat = true
	if r := c.must(exitIO, append(base, "--all")...); !strings.Contains(r.stderr, "repeated") {
		t.Fatalf("repeated cursor: %q", r.stderr)
	}
}

// TestAdminBootstrapRequest: the credential comes from a file or the
// environment (a flag warns), goes only as the bearer of POST
// /v1/admin/bootstrap with the wallet's DID, unsigned.
func TestAdminBootstrapRequest(t *testing.T) {
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		writeJSONReply(w, 201, map[string]any{"did": "x", "role": "owner"})
	})
	dir := t.TempDir()
	c := newCLI(t)
	wallet, did := keygen(t, c, dir, "owner", true)
	cred := recoveryPrefix + strings.Repeat("B", 43)
	credFile := filepath.Join(dir, "cred")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(r result) {
		t.Helper()
		s := f.last(t)
		if s.Method != "POST" || s.Path != "/v1/admin/bootstrap" || s.Bearer != cred || s.DID != "" || s.Body != `{"did":"`+did+`"}` {
			t.Fatalf("sent %+v", s)
		}
		if strings.Contains(r.stdout+r.stderr, cred) {
			t.Fatalf("credential printed: %q %q", r.stdout, r.stderr)
		}
	}
	check(c.must(exitOK, "admin", "bootstrap", "--server", f.URL, "--wallet", wallet, "--credential-file", credFile))
	c.env["TALOS_BOOTSTRAP_CREDENTIAL"] = cred
	check(c.must(exitOK, "admin", "bootstrap", "--json", "--server", f.URL, "--wallet", wallet))
	delete(c.env, "TALOS_BOOTSTRAP_CREDENTIAL")
	r := c.must(exitOK, "admin", "bootstrap", "--server", f.URL, "--did", did, "--credential", cred)
	if !strings.Contains(r.stderr, "warning") {
		t.Fatalf("no warning for --credential: %q", r.stderr)
	}
	check(r)
	n := len(f.requests())
	c.must(exitUsage, "admin", "bootstrap", "--server", f.URL, "--wallet", wallet)                                      // no credential
	c.must(exitUsage, "admin", "bootstrap", "--server", f.URL, "--credential-file", credFile)                           // no identity
	c.env["TALOS_BOOTSTRAP_CREDENTIAL"] = "talos_session_xyz"                                                           // wrong kind
	c.must(exitUsage, "admin", "bootstrap", "--server", f.URL, "--wallet", wallet)                                      //
	c.must(exitFailed, "admin", "bootstrap", "--server", f.URL, "--did", "did:key:nope", "--credential-file", credFile) // bad DID
	if len(f.requests()) != n {
		t.Fatal("a refused bootstrap was sent")
	}
}

// goldenRecovery is gateway/admin's recovery-file vector, computed
// independently of either Go implementation.
type goldenRecovery struct {
	MasterKey  string `json:"master_key_b64u"`
	Credential string `json:"credential"`
	CreatedAt  string `json:"created_at"`
	File       string `json:"file"`
}

func readGoldenRecovery(t *testing.T) goldenRecovery {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "gateway", "admin", "testdata", "admin-recovery-v1.json"))
	if err != nil {
		t.Fatalf("the golden vector is in the repository: %v", err)
	}
	var g goldenRecovery
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRecoveryFileGoldenVector: the writer produces exactly the bytes of
// the committed vector.
func TestRecoveryFileGoldenVector(t *testing.T) {
	g := readGoldenRecovery(t)
	key, err := contracts.DecodeBase64URL(g.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, g.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := marshalRecoveryFile(key, g.Credential, at)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != g.File {
		t.Fatalf("recovery file\n got %q\nwant %q", got, g.File)
	}
	if _, err := marshalRecoveryFile(key[:31], g.Credential, at); err == nil {
		t.Fatal("a short master key was accepted")
	}
}

// TestAdminRecover: the command reads the master key from the data
// directory or the environment, writes the file 0600 and prints a
// credential whose file it is.
func TestAdminRecover(t *testing.T) {
	g := readGoldenRecovery(t)
	key, _ := contracts.DecodeBase64URL(g.MasterKey)
	dir := t.TempDir()
	c := newCLI(t)
	c.must(exitIO, "admin", "recover", "--data-dir", dir) // no master key anywhere
	if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte(g.MasterKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must(exitFailed, "admin", "recover", "--data-dir", dir) // readable by others
	os.Chmod(filepath.Join(dir, "master.key"), 0o600)
	check := func(r result) {
		t.Helper()
		cred := strings.TrimSpace(r.stdout)
		if m := map[string]any{}; json.Unmarshal([]byte(r.stdout), &m) == nil {
			cred, _ = m["credential"].(string)
		}
		if !strings.HasPrefix(cred, recoveryPrefix) || len(cred) != len(recoveryPrefix)+43 {
			t.Fatalf("credential %q", cred)
		}
		path := filepath.Join(dir, recoveryFileName)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", st.Mode())
		}
		var f recoveryFile
		if err := contracts.UnmarshalStrict(bytes.TrimSuffix(raw, []byte("\n")), &f); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, f.CreatedAt)
		if err != nil || time.Since(at) > time.Minute {
			t.Fatalf("created_at %q", f.CreatedAt)
		}
		want, _ := marshalRecoveryFile(key, cred, at)
		if string(raw) != string(want) {
			t.Fatalf("file %q, want %q", raw, want)
		}
	}
	check(c.must(exitOK, "admin", "recover", "--data-dir", dir))
	// The environment's key wins over the file.
	other := bytes.Repeat([]byte{7}, 32)
	c.env[masterKeyEnv] = contracts.EncodeBase64URL(other)
	key = other
	r := c.must(exitOK, "admin", "recover", "--json", "--data-dir", dir)
	if !strings.Contains(r.stderr, "replacing") {
		t.Fatalf("no replacement notice: %q", r.stderr)
	}
	check(r)
	c.env[masterKeyEnv] = "short"
	c.must(exitFailed, "admin", "recover", "--data-dir", dir)
	c.must(exitUsage, "admin", "recover")
	c.must(exitIO, "admin", "recover", "--data-dir", filepath.Join(dir, "nope"))
}

// watchTestEvent is the stream frame of test event i.
func watchTestEvent(i int, surface string) string {
	ev := map[string]any{
		"event_id": fmt.Sprintf("ev-%d", i), "ts": "2026-12-03T10:00:0" + fmt.Sprint(i) + "Z", "surface_id": surface, "outcome": "denied",
		"principal": map[string]any{"principal_id": "did:key:z6MkAgent", "auth_mode": "attested"},
		"http":      map[string]any{"method": "POST", "path": "/v1/authorize", "status_code": 403},
		"meta":      map[string]any{"decision_reason": "NO_GRANT"},
	}
	b, _ := json.Marshal(ev)
	return fmt.Sprintf("id: cur-%d\nevent: audit\ndata: %s\n\n", i, b)
}

// TestAdminWatch: events print one line each; a dropped connection is
// resumed with Last-Event-ID of the last event; pings and other events
// are skipped; cancelling (Ctrl-C) exits 0; a refused cursor exits 1
// without retrying.
func TestAdminWatch(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		if s.LastEventID == "bad" {
			writeJSONReply(w, 400, contracts.New(contracts.CodeInvalidInput, "unknown cursor"))
			return
		}
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		switch n {
		case 1:
			io.WriteString(w, ": ping\n\n"+watchTestEvent(1, "kernel.authorize")+"event: other\ndata: {}\n\n"+watchTestEvent(2, "kernel.authorize"))
			fl.Flush()
			// Then the connection drops.
		case 2:
			io.WriteString(w, watchTestEvent(3, "mcp.gateway"))
			fl.Flush()
			<-r.Context().Done()
		default:
			<-r.Context().Done()
		}
	})
	c := newCLI(t)
	wallet, did := keygen(t, c, t.TempDir(), "admin", true)

	run := func(ctx context.Context, args ...string) result {
		var out, errb bytes.Buffer
		e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := e.run(args)
		return result{code, out.String(), errb.String()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := newLineWriter(3)
	var errb bytes.Buffer
	resc := make(chan int, 1)
	go func() {
		e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
		resc <- e.run([]string{"admin", "watch", "--server", f.URL, "--wallet", wallet, "--json", "--surface", "kernel.authorize", "--after", "cur-0"})
	}()
	select {
	case <-out.reached:
	case code := <-resc:
		t.Fatalf("watch ended early: exit %d: %s", code, errb.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the watch did not print three events")
	}
	cancel() // as Ctrl-C does
	r := result{<-resc, out.String(), errb.String()}
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 event lines, got %q", r.stdout)
	}
	for i, l := range lines {
		var ev struct {
			ID    string         `json:"id"`
			Event map[string]any `json:"event"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.ID != fmt.Sprintf("cur-%d", i+1) || ev.Event["event_id"] != fmt.Sprintf("ev-%d", i+1) {
			t.Fatalf("line %d: %q (%v)", i, l, err)
		}
	}
	reqs := f.requests()
	if reqs[0].LastEventID != "cur-0" || reqs[1].LastEventID != "cur-2" || reqs[0].DID != did || reqs[1].DID != did {
		t.Fatalf("requests %+v", reqs)
	}
	if reqs[0].Path != "/v1/audit/stream" || reqs[0].Query != "surface=kernel.authorize" {
		t.Fatalf("request %+v", reqs[0])
	}
	if !strings.Contains(r.stderr, "reconnecting after cur-2") {
		t.Fatalf("stderr %q", r.stderr)
	}

	// A text row, then a refused cursor: exit 1, no retry.
	bad := run(context.Background(), "admin", "watch", "--server", f.URL, "--wallet", wallet, "--after", "bad")
	if bad.code != exitFailed || !strings.Contains(bad.stderr, "TALOS_INVALID_INPUT") {
		t.Fatalf("bad cursor: %+v", bad)
	}
	if c := run(context.Background(), "admin", "watch", "--server", f.URL, "--wallet", wallet, "--outcome", "maybe"); c.code != exitUsage {
		t.Fatalf("bad outcome: %+v", c)
	}
}

// lineWriter is a concurrency-safe buffer that closes reached once it
// holds n lines.
type lineWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	n       int
	reached chan struct{}
}

func newLineWriter(n int) *lineWriter { return &lineWriter{n: n, reached: make(chan struct{})} }

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	before := bytes.Count(l.buf.Bytes(), []byte("\n"))
	l.buf.Write(p)
	if after := bytes.Count(l.buf.Bytes(), []byte("\n")); before < l.n && after >= l.n {
		close(l.reached)
	}
	return len(p), nil
}

func (l *lineWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestWatchRow(t *testing.T) {
	sr := newSSEReader(strings.NewReader(watchTestEvent(4, "kernel.authorize")))
	ev, err := sr.next()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e := &env{stdout: &out}
	if err := e.printWatchEvent(ev, false); err != nil {
		t.Fatal(err)
	}
	row := out.String()
	for _, want := range []string{"2026-12-03T10:00:04Z", "kernel.authorize", "denied", "403", "did:key:z6MkAgent", "POST /v1/authorize NO_GRANT"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
	// Server data cannot drive the terminal.
	if s := safeText("a\x1b[2Jb"); !strings.HasPrefix(s, `"`) {
		t.Errorf("escape not quoted: %q", s)
	}
	if err := e.printWatchEvent(sseEvent{ID: "x", Event: "audit", Data: "not json"}, false); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("bad event: %v", err)
	}
}

func TestSSEReader(t *testing.T) {
	in := ": hello\n\nid: 1\nevent: audit\ndata: a\ndata: b\r\n\nretry: 5\nfoo: bar\ndata:c\n\nid: 2\n\ndata: d\n\n"
	sr := newSSEReader(strings.NewReader(in))
	want := []sseEvent{{"1", "audit", "a\nb"}, {"1", "message", "c"}, {"2", "message", "d"}}
	for i, w := range want {
		ev, err := sr.next()
		if err != nil || ev != w {
			t.Fatalf("event %d: %+v %v, want %+v", i, ev, err, w)
		}
	}
	if _, err := sr.next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	for name, in := range map[string]string{
		"torn":     "data: a\n",
		"tornline": "data: a",
	} {
		if _, err := newSSEReader(strings.NewReader(in)).next(); err != io.ErrUnexpectedEOF {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string]string{
		"long line": "data: " + strings.Repeat("x", maxSSELine) + "\n\n",
		"big event": strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", maxSSEEvent/1000+1) + "\n",
		"long id":   "id: " + strings.Repeat("x", maxCursor+1) + "\n",
		"cr":        "data: a\rb\n\n",
		"nul":       "data: a\x00\n\n",
	} {
		if _, err := newSSEReader(strings.NewReader(in)).next(); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzSSEReader: events written in the format read back as written, and
// arbitrary input is refused or bounded, never more.
func FuzzSSEReader(f *testing.F) {
	f.Add("cur-1", "audit", `{"a":1}`, []byte(watchTestEvent(1, "x")))
	f.Add("", "", "line1\nline2", []byte(": ping\n\n"))
	f.Add("x", "y", "", []byte("data\n\ndata:\n\n"))
	f.Fuzz(func(t *testing.T, id, event, data string, raw []byte) {
		// Round trip of one event with single-line fields.
		if !strings.ContainsAny(id+event, "\r\n\x00") && !strings.ContainsAny(data, "\r\x00") && len(id) <= maxCursor && event != "" && !strings.HasPrefix(id, " ") && !strings.HasPrefix(event, " ") {
			var b strings.Builder
			fmt.Fprintf(&b, "id: %s\nevent: %s\n", id, event)
			for _, l := range strings.Split(data, "\n") {
				fmt.Fprintf(&b, "data: %s\n", l)
			}
			b.WriteString("\n")
			ev, err := newSSEReader(strings.NewReader(b.String())).next()
			if err != nil || ev.ID != id || ev.Event != event || ev.Data != data {
				t.Fatalf("round trip: %+v %v from %q", ev, err, b.String())
			}
		}
		sr := newSSEReader(bytes.NewReader(raw))
		for i := 0; ; i++ {
			ev, err := sr.next()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && contracts.CodeOf(err) != contracts.CodeInvalidInput {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if len(ev.Data) > maxSSEEvent || len(ev.ID) > maxCursor || strings.ContainsAny(ev.Data+ev.ID+ev.Event, "\r\x00") || i > len(raw) {
				t.Fatalf("unbounded event %+v", ev)
			}
		}
	})
}

// TestAdminWatchIdle: a connection on which nothing arrives (not even the
// server's pings) is treated as dead and replaced.
func TestAdminWatchIdle(t *testing.T) {
	old := watchIdle
	watchIdle = 300 * time.Millisecond
	t.Cleanup(func() { watchIdle = old })
	var mu sync.Mutex
	conns := 0
	f := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		if n == 2 {
			io.WriteString(w, watchTestEvent(1, "admin"))
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done() // the first connection stays silent
	})
	c := newCLI(t)
	wallet, _ := keygen(t, c, t.TempDir(), "admin", true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLineWriter(2) // the header and one row
	var errb lockedBuffer
	resc := make(chan int, 1)
	go func() {
		e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
		resc <- e.run([]string{"admin", "watch", "--server", f.URL, "--wallet", wallet})
	}()
	select {
	case <-out.reached:
	case code := <-resc:
		t.Fatalf("watch ended: exit %d: %s", code, errb.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no event after an idle connection: %s", errb.String())
	}
	cancel()
	if code := <-resc; code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errb.String(), "no data for") || !strings.Contains(out.String(), "did:key:z6MkAgent") {
		t.Fatalf("stderr %q stdout %q", errb.String(), out.String())
	}
}
