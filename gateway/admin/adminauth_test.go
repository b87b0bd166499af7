package admin_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/admin/admintest"
	"github.com/talosgo/talos/identity"
)

// call sends one request: signed by a when a is non-nil, otherwise with
// the Authorization header auth (if any). It returns the status and the
// raw body.
func (f *fixture) call(a *admintest.Admin, auth, method, path, body string) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if a != nil {
		if err := a.Sign(req); err != nil {
			f.t.Fatal(err)
		}
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func code(raw []byte) string {
	var eb errBody
	_ = json.Unmarshal(raw, &eb)
	return eb.Code
}

// session mints a session of role for a (attested POST /v1/admin/sessions).
func (f *fixture) mintSession(a *admintest.Admin, role string) string {
	f.t.Helper()
	body := `{}`
	if role != "" {
		body = fmt.Sprintf(`{"role":%q}`, role)
	}
	st, raw := f.call(a, "", "POST", "/v1/admin/sessions", body)
	var s admin.SessionResponse
	if st != http.StatusCreated || json.Unmarshal(raw, &s) != nil || !strings.HasPrefix(s.Token, admin.SessionPrefix) {
		f.t.Fatalf("session %s: %d %s", role, st, raw)
	}
	return s.Token
}

// grants is the contract's table of the built-in roles (adminapi.md),
// written out independently of the package's role definitions.
func grants(role, tool, action string) bool {
	all := admin.Tools()
	switch role {
	case admin.RoleOwner:
		return slices.Contains(all, tool)
	case admin.RoleOperator:
		if tool == admin.ToolAdmins || tool == admin.ToolSecrets {
			return action == "read"
		}
		return slices.Contains(all, tool)
	case admin.RoleAuditor:
		return action == "read" && (tool == "admin.audit" || tool == "admin.stats")
	case admin.RoleViewer:
		return action == "read" && slices.Contains(all, tool) && tool != "admin.audit" && tool != "admin.secrets"
	}
	return false
}

// expand fills a route pattern's wildcards.
func expand(pattern, did string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{did}", did, "{id}", "x", "{scope}", "team:x", "{hash}", strings.Repeat("a", 64))
	return method, r.Replace(path)
}

// TestRoleRouteTable: every mounted route × every role, through sessions
// of each role and attested requests of an identity of each role: the
// declared (tool, action) decides, as the contract's table says; no
// credential is 401; a route without a declared grant is only the
// bootstrap route or the caller's own whoami and sessions.
func TestRoleRouteTable(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	routes := f.admin.Routes()
	if len(routes) < 27 {
		t.Fatalf("%d routes", len(routes))
	}
	self := []string{"POST /v1/admin/bootstrap", "GET /v1/admin/whoami", "POST /v1/admin/sessions", "DELETE /v1/admin/sessions/current"}
	admins := map[string]*admintest.Admin{}
	sessions := map[string]string{}
	for _, role := range admin.Roles() {
		admins[role] = admintest.NewAdmin(t, f.admin, role)
		sessions[role] = f.mintSession(admins[role], "")
	}
	// A target identity that no route deletes for real (DELETE of a
	// missing one is 404 after the grant is checked).
	target := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	for _, rt := range routes {
		method, path := expand(rt.Pattern, target)
		if rt.Tool == "" {
			if !slices.Contains(self, rt.Pattern) {
				t.Errorf("%s has no declared grant", rt.Pattern)
			}
			continue
		}
		if st, raw := f.call(nil, "", method, path, ""); st != 401 || code(raw) != string(contracts.CodeAuthInvalid) {
			t.Errorf("%s without a credential: %d %s", rt.Pattern, st, raw)
		}
		if st, _ := f.call(nil, "Bearer talos_session_forged", method, path, ""); st != 401 {
			t.Errorf("%s with a forged session: %d", rt.Pattern, st)
		}
		for _, role := range admin.Roles() {
			want := grants(role, rt.Tool, rt.Action)
			for mode, send := range map[string]func() (int, []byte){
				"session":  func() (int, []byte) { return f.call(nil, "Bearer "+sessions[role], method, path, "") },
				"attested": func() (int, []byte) { return f.call(admins[role], "", method, path, "") },
			} {
				st, raw := send()
				denied := st == 403 && code(raw) == string(contracts.CodeRBACDenied)
				if want && (st == 401 || st == 403) || !want && !denied {
					t.Errorf("%s as %s (%s): %d %s, want allowed=%v", rt.Pattern, role, mode, st, raw, want)
				}
			}
		}
	}
	// The caller's own routes: every role.
	for _, role := range admin.Roles() {
		st, raw := f.call(nil, "Bearer "+sessions[role], "GET", "/v1/admin/whoami", "")
		var who admin.WhoamiResponse
		if st != 200 || json.Unmarshal(raw, &who) != nil || who.Role != role || who.AuthMode != "session" || who.DID != admins[role].DID() {
			t.Errorf("whoami as %s: %d %s", role, st, raw)
		}
		for _, p := range who.Permissions {
			for _, a := range p.Actions {
				if !grants(role, p.Tool, a) {
					t.Errorf("whoami of %s lists %s %s", role, p.Tool, a)
				}
			}
		}
	}
	// An unknown tool or action denies everything, even an owner.
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	mux.HandleFunc("GET /tool", f.admin.Require("admin.nothing", "read", ok))
	mux.HandleFunc("GET /action", f.admin.Require(admin.ToolPrincipals, "delete", ok))
	for _, p := range []string{"/tool", "/action"} {
		req, _ := http.NewRequest("GET", p, nil)
		req.Header.Set("Authorization", "Bearer "+sessions[admin.RoleOwner])
		w := &recorder{h: http.Header{}}
		mux.ServeHTTP(w, req)
		if w.code != 403 {
			t.Errorf("undeclared grant %s: %d", p, w.code)
		}
	}
}

type recorder struct {
	h    http.Header
	code int
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(c int)           { r.code = c }

// TestAttestedAdmin: an admin's signature authenticates it; a replayed
// request, an agent key, an unknown key and a wrong opcode do not; the
// audit event names the acting admin.
func TestAttestedAdmin(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	agent, _ := identity.GenerateWallet("agent")
	path := "/v1/principals/" + agent.DID().String()
	req, _ := http.NewRequest("PUT", f.srv.URL+path, strings.NewReader(`{"team_id":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	if err := f.owner.Sign(req); err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(t.Context())
	replay.Body, _ = req.GetBody()
	if st := f.send(req, nil); st != 200 {
		t.Fatalf("attested put: %d", st)
	}
	var eb errBody
	if st := f.send(replay, &eb); st != 409 || eb.Code != string(contracts.CodeReplayDetected) {
		t.Fatalf("replay: %d %s", st, eb.Code)
	}
	n := f.auditSize()
	entry, _ := f.log.Entry(t.Context(), n-1)
	ev, err := audit.ParseEvent(entry)
	if err != nil || ev.SurfaceID != admin.SurfaceID || ev.Principal.PrincipalID != f.owner.DID() || ev.Meta["admin_auth_mode"] != "attested" {
		t.Fatalf("audit event: %+v %v", ev, err)
	}
	// The agent is registered, but it is not an admin.
	agentAdmin := admintest.SignerFor(t, agent, admin.RoleOwner)
	if st, raw := f.call(agentAdmin, "", "GET", path, ""); st != 401 {
		t.Fatalf("agent key on an admin route: %d %s", st, raw)
	}
	// Another opcode than "admin" does not verify.
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: f.owner.Wallet.Signer()})
	req, _ = http.NewRequest("GET", f.srv.URL+path, nil)
	s.Sign(req, "kernel.authorize")
	if st := f.send(req, &eb); st != 401 {
		t.Fatalf("wrong opcode: %d %s", st, eb.Code)
	}
	// A session's audit event says session.
	if st := f.do("DELETE", path, true, "", nil); st != 200 {
		t.Fatal(st)
	}
	entry, _ = f.log.Entry(t.Context(), f.auditSize()-1)
	ev, _ = audit.ParseEvent(entry)
	if ev.Principal.PrincipalID != f.owner.DID() || ev.Principal.AuthMode != audit.AuthBearer || ev.Meta["admin_auth_mode"] != "session" {
		t.Fatalf("session audit event: %+v", ev)
	}
}

func bootstrapVault(t *testing.T) (*admin.Config, string) {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	v := vault(t, filepath.Join(t.TempDir(), "secrets.json"), master)
	const id = "server/admin-bootstrap-sha256"
	cred, _, err := admin.Bootstrap(t.Context(), v, id)
	if err != nil || cred == "" {
		t.Fatal(cred, err)
	}
	dir := t.TempDir()
	key, err := admin.RecoveryKey(master)
	if err != nil {
		t.Fatal(err)
	}
	return &admin.Config{Bootstrap: v, BootstrapID: id, RecoveryFile: filepath.Join(dir, admin.RecoveryFileName), RecoveryKey: key}, cred
}

func withBootstrap(c *admin.Config) func(*admin.Config) {
	return func(cfg *admin.Config) {
		cfg.Bootstrap, cfg.BootstrapID, cfg.RecoveryFile, cfg.RecoveryKey = c.Bootstrap, c.BootstrapID, c.RecoveryFile, c.RecoveryKey
	}
}

func didBody(t *testing.T) (string, string) {
	w, err := identity.GenerateWallet("x")
	if err != nil {
		t.Fatal(err)
	}
	return w.DID().String(), fmt.Sprintf(`{"did":%q}`, w.DID().String())
}

// TestBootstrapCredentialSpentAfterFirstOwner: the bootstrap credential
// creates the first owner once (one winner among concurrent requests),
// then answers 401 for ever; it authenticates no other route.
func TestBootstrapCredentialSpentAfterFirstOwner(t *testing.T) {
	bc, cred := bootstrapVault(t)
	f := newFixtureOpts(t, nil, fixtureOpts{cfg: withBootstrap(bc), noOwner: true})
	if st, _ := f.call(nil, "Bearer "+cred, "GET", "/v1/principals", ""); st != 401 {
		t.Fatalf("bootstrap credential on a list route: %d", st)
	}
	if st, _ := f.call(nil, "Bearer "+cred+"x", "POST", "/v1/admin/bootstrap", `{"did":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}`); st != 401 {
		t.Fatalf("wrong credential: %d", st)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		_, body := didBody(t)
		wg.Go(func() {
			st, raw := f.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body)
			switch st {
			case 201:
				wins.Add(1)
				if !strings.Contains(string(raw), `"role":"owner"`) {
					t.Errorf("bootstrap answer %s", raw)
				}
			case 401:
			default:
				t.Errorf("bootstrap: %d %s", st, raw)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d bootstraps succeeded", wins.Load())
	}
	if spent, err := admin.BootstrapSpent(t.Context(), bc.Bootstrap, bc.BootstrapID); err != nil || !spent {
		t.Fatalf("spent: %v %v", spent, err)
	}
	_, body := didBody(t)
	if st, raw := f.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body); st != 401 || code(raw) != string(contracts.CodeAuthInvalid) {
		t.Fatalf("spent credential: %d %s", st, raw)
	}
	// Bad bodies are refused before anything is spent elsewhere.
	for _, b := range []string{`{}`, `{"did":"did:web:x"}`, `{"did":1}`, `not json`} {
		if st, _ := f.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", b); st != 400 && st != 401 {
			t.Errorf("body %s: %d", b, st)
		}
	}
	// An audit event per owner made, via bootstrap.
	entry, _ := f.log.Entry(t.Context(), 0)
	ev, err := audit.ParseEvent(entry)
	if err != nil || ev.Meta["via"] != "bootstrap" || !strings.HasPrefix(ev.Principal.PrincipalID, "did:key:") {
		t.Fatalf("bootstrap audit event: %+v %v", ev, err)
	}
}

// TestBootstrapRefusedWhenAnOwnerExists: an owner made by set-up code
// also spends the bootstrap credential.
func TestBootstrapRefusedWhenAnOwnerExists(t *testing.T) {
	bc, cred := bootstrapVault(t)
	f := newFixtureOpts(t, nil, fixtureOpts{cfg: withBootstrap(bc)})
	_, body := didBody(t)
	if st, _ := f.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body); st != 401 {
		t.Fatalf("bootstrap with an owner: %d", st)
	}
}

// TestRecoveryFile: a recovery file made with the master key admits its
// credential once, even with owners; a tampered MAC, another master key,
// an old file, and the same file twice are refused.
func TestRecoveryFile(t *testing.T) {
	bc, _ := bootstrapVault(t)
	now := time.Now()
	f := newFixtureOpts(t, nil, fixtureOpts{cfg: withBootstrap(bc)})
	dir := filepath.Dir(bc.RecoveryFile)
	master := make([]byte, 32)
	rand.Read(master)
	// The fixture's recovery key is from another master key than this one.
	cred := admin.BootstrapPrefix + contracts.EncodeBase64URL(master)
	if err := admin.WriteRecoveryFile(dir, master, cred, now); err != nil {
		t.Fatal(err)
	}
	_, body := didBody(t)
	if st, _ := f.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body); st != 401 {
		t.Fatalf("recovery file of another master key: %d", st)
	}

	// With the server's master key: recreate the fixture's key.
	bc2, _ := bootstrapVault(t)
	master2 := make([]byte, 32)
	rand.Read(master2)
	bc2.RecoveryKey, _ = admin.RecoveryKey(master2)
	f2 := newFixtureOpts(t, nil, fixtureOpts{cfg: withBootstrap(bc2)})
	dir2 := filepath.Dir(bc2.RecoveryFile)
	if err := admin.WriteRecoveryFile(dir2, master2, cred, now); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(bc2.RecoveryFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("recovery file mode: %v %v", st, err)
	}
	if st, _ := f2.call(nil, "Bearer "+cred+"x", "POST", "/v1/admin/bootstrap", body); st != 401 {
		t.Fatalf("recovery with another credential: %d", st)
	}
	did, body := didBody(t)
	if st, raw := f2.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body); st != 201 {
		t.Fatalf("recovery: %d %s", st, raw)
	}
	if _, err := os.Stat(bc2.RecoveryFile); !os.IsNotExist(err) {
		t.Fatalf("the recovery file was not spent: %v", err)
	}
	entry, _ := f2.log.Entry(t.Context(), f2.auditSize()-1)
	if ev, _ := audit.ParseEvent(entry); ev.Meta["via"] != "recovery" || ev.Principal.PrincipalID != did {
		t.Fatalf("recovery audit event: %+v", ev)
	}
	_, body = didBody(t)
	if st, _ := f2.call(nil, "Bearer "+cred, "POST", "/v1/admin/bootstrap", body); st != 401 {
		t.Fatalf("recovery credential twice: %d", st)
	}

	// Tampered MAC, tampered fields, old and future files.
	key := bc2.RecoveryKey
	good, _ := admin.MarshalRecoveryFile(master2, cred, now)
	if err := admin.CheckRecoveryFile(good, key, cred, now); err != nil {
		t.Fatalf("good file refused: %v", err)
	}
	var rf admin.RecoveryFile
	json.Unmarshal(good, &rf)
	tamper := func(edit func(*admin.RecoveryFile)) []byte {
		c := rf
		edit(&c)
		b, _ := json.Marshal(c)
		return b
	}
	for name, raw := range map[string][]byte{
		"mac":         tamper(func(c *admin.RecoveryFile) { c.MAC = contracts.EncodeBase64URL(make([]byte, 32)) }),
		"created_at":  tamper(func(c *admin.RecoveryFile) { c.CreatedAt = now.Add(time.Hour).UTC().Format(time.RFC3339) }),
		"credential":  tamper(func(c *admin.RecoveryFile) { c.CredentialSHA256 = contracts.EncodeBase64URL(make([]byte, 32)) }),
		"version":     tamper(func(c *admin.RecoveryFile) { c.V = 2 }),
		"unknown key": []byte(strings.Replace(string(good), `{"v":1`, `{"x":1,"v":1`, 1)),
		"not json":    []byte("v=1"),
	} {
		if err := admin.CheckRecoveryFile(raw, key, cred, now); contracts.CodeOf(err) != contracts.CodeAuthInvalid {
			t.Errorf("%s tampered: %v", name, err)
		}
	}
	old, _ := admin.MarshalRecoveryFile(master2, cred, now.Add(-admin.RecoveryMaxAge))
	if err := admin.CheckRecoveryFile(old, key, cred, now); err == nil {
		t.Error("a 24 h old recovery file was accepted")
	}
	future, _ := admin.MarshalRecoveryFile(master2, cred, now.Add(time.Hour))
	if err := admin.CheckRecoveryFile(future, key, cred, now); err == nil {
		t.Error("a recovery file from the future was accepted")
	}
	if err := admin.CheckRecoveryFile(good, key, cred, now.Add(admin.RecoveryMaxAge-time.Minute)); err != nil {
		t.Errorf("a 23 h 59 min old recovery file: %v", err)
	}
}

// recoveryVector is testdata/admin-recovery-v1.json: fixed inputs and the
// exact recovery file bytes (shared with cmd/talos's writer).
type recoveryVector struct {
	Comment       string `json:"comment"`
	MasterKeyB64U string `json:"master_key_b64u"`
	Credential    string `json:"credential"`
	CreatedAt     string `json:"created_at"`
	RecoveryKey   string `json:"recovery_key_b64u"`
	MACMessage    string `json:"mac_message"`
	File          string `json:"file"`
}

func TestRecoveryFileGoldenVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/admin-recovery-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v recoveryVector
	if err := contracts.UnmarshalStrict(raw, &v); err != nil {
		t.Fatal(err)
	}
	master, err := contracts.DecodeBase64URL(v.MasterKeyB64U)
	if err != nil {
		t.Fatal(err)
	}
	created, err := time.Parse(time.RFC3339, v.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	key, err := admin.RecoveryKey(master)
	if err != nil || contracts.EncodeBase64URL(key) != v.RecoveryKey {
		t.Fatalf("recovery key %s, want %s (%v)", contracts.EncodeBase64URL(key), v.RecoveryKey, err)
	}
	got, err := admin.MarshalRecoveryFile(master, v.Credential, created)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v.File {
		t.Fatalf("file\n%q\nwant\n%q", got, v.File)
	}
	var rf admin.RecoveryFile
	json.Unmarshal(got, &rf)
	if want := "talos-admin-recovery-v1\n" + rf.CredentialSHA256 + "\n" + rf.CreatedAt; want != v.MACMessage {
		t.Fatalf("MAC message %q, want %q", want, v.MACMessage)
	}
	if err := admin.CheckRecoveryFile([]byte(v.File), key, v.Credential, created.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// TestSessions: minted by an attested admin only, narrower roles only,
// ttl bounds, expiry, revocation of the presented session, and a deleted
// or demoted identity's sessions stop (or narrow) at once.
func TestSessions(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	f := newFixture(t, fileStore(t), now)
	op := admintest.NewAdmin(t, f.admin, admin.RoleOperator)

	// TTL bounds and role rules.
	for body, want := range map[string]int{
		`{"ttl_seconds":59}`: 400, `{"ttl_seconds":28801}`: 400, `{"ttl_seconds":60}`: 201, `{"ttl_seconds":28800}`: 201,
		`{"role":"owner"}`: 403, `{"role":"viewer"}`: 201, `{"role":"auditor"}`: 201, `{"role":"root"}`: 400, `{"x":1}`: 400,
	} {
		if st, raw := f.call(op, "", "POST", "/v1/admin/sessions", body); st != want {
			t.Errorf("operator session %s: %d %s, want %d", body, st, raw, want)
		}
	}
	viewer := f.mintSession(op, admin.RoleViewer)
	if st, raw := f.call(nil, "Bearer "+viewer, "POST", "/v1/admin/sessions", `{}`); st != 403 {
		t.Fatalf("a session minted a session: %d %s", st, raw)
	}
	if st, _ := f.call(nil, "Bearer "+viewer, "GET", "/v1/principals", ""); st != 200 {
		t.Fatalf("viewer session read: %d", st)
	}
	if st, _ := f.call(nil, "Bearer "+viewer, "PUT", "/v1/budgets/team:a", `{"limit_usd":"1","mode":"hard"}`); st != 403 {
		t.Fatalf("viewer session write: %d", st)
	}
	// Only the hash is stored.
	docs, _ := f.store.All(t.Context())
	for _, d := range docs {
		if strings.Contains(string(d.Doc), viewer) || strings.Contains(d.ID, viewer) {
			t.Fatal("a session token is stored")
		}
	}

	// Expiry: 900 s by default.
	s := f.mintSession(op, "")
	clock.Add(899)
	if st, _ := f.call(nil, "Bearer "+s, "GET", "/v1/principals", ""); st != 200 {
		t.Fatalf("session before expiry: %d", st)
	}
	clock.Add(1)
	if st, raw := f.call(nil, "Bearer "+s, "GET", "/v1/principals", ""); st != 401 || code(raw) != string(contracts.CodeAuthInvalid) {
		t.Fatalf("expired session: %d %s", st, raw)
	}
	clock.Store(time.Now().Unix()) // attestations are checked against the clock too

	// Revocation of the presented session.
	s = f.mintSession(op, "")
	if st, _ := f.call(nil, "Bearer "+s, "DELETE", "/v1/admin/sessions/current", ""); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if st, _ := f.call(nil, "Bearer "+s, "GET", "/v1/principals", ""); st != 401 {
		t.Fatalf("revoked session: %d", st)
	}
	if st, _ := f.call(op, "", "DELETE", "/v1/admin/sessions/current", ""); st != 400 {
		t.Fatalf("revoke without a session: %d", st)
	}

	// Demotion narrows a live session; deletion ends it.
	s = f.mintSession(op, "")
	if st := f.do("PUT", "/v1/admin/identities/"+op.DID(), true, `{"role":"viewer"}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st, _ := f.call(nil, "Bearer "+s, "GET", "/v1/principals", ""); st != 401 {
		t.Fatalf("operator session after demotion to viewer: %d", st)
	}
	v2 := f.mintSession(op, "")
	if st := f.do("DELETE", "/v1/admin/identities/"+op.DID(), true, "", nil); st != 200 {
		t.Fatal(st)
	}
	if st, _ := f.call(nil, "Bearer "+v2, "GET", "/v1/principals", ""); st != 401 {
		t.Fatalf("session of a deleted admin: %d", st)
	}
	if st, _ := f.call(op, "", "GET", "/v1/principals", ""); st != 401 {
		t.Fatalf("deleted admin's signature: %d", st)
	}
}

// TestIdentities: CRUD of admin identities, and the last owner cannot be
// deleted or demoted.
func TestIdentities(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	me := f.owner.DID()
	var eb errBody
	if st := f.do("DELETE", "/v1/admin/identities/"+me, true, "", &eb); st != 409 || eb.Code != string(contracts.CodeStateInvalidTransition) {
		t.Fatalf("delete the last owner: %d %s", st, eb.Code)
	}
	if st := f.do("PUT", "/v1/admin/identities/"+me, true, `{"role":"operator"}`, &eb); st != 409 {
		t.Fatalf("demote the last owner: %d", st)
	}
	w, _ := identity.GenerateWallet("second")
	other := w.DID().String()
	var id admin.Identity
	if st := f.do("PUT", "/v1/admin/identities/"+other, true, `{"role":"owner"}`, &id); st != 200 || id.Role != "owner" || id.CreatedBy != me {
		t.Fatalf("put: %d %+v", st, id)
	}
	f.expectErr("bad role", "PUT", "/v1/admin/identities/"+other, `{"role":"root"}`, string(contracts.CodeInvalidInput))
	f.expectErr("bad did", "PUT", "/v1/admin/identities/did:web:x", `{"role":"viewer"}`, string(contracts.CodeInvalidInput))
	f.expectErr("missing", "GET", "/v1/admin/identities/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "", string(contracts.CodeNotFound))
	if st := f.do("PUT", "/v1/admin/identities/"+me, true, `{"role":"auditor"}`, &id); st != 200 || id.Role != "auditor" {
		t.Fatalf("demote one of two owners: %d %+v", st, id)
	}
	var list admin.List[admin.Identity]
	// The demoted admin's owner session no longer authenticates (its
	// identity's role does not cover owner): list as the other owner.
	if st := f.do("GET", "/v1/admin/identities", true, "", nil); st != 401 {
		t.Fatalf("owner session of a demoted admin: %d", st)
	}
	o2 := admintest.SignerFor(t, w, admin.RoleOwner)
	st, raw := f.call(o2, "", "GET", "/v1/admin/identities", "")
	if st != 200 || json.Unmarshal(raw, &list) != nil || len(list.Items) != 2 {
		t.Fatalf("list: %d %s", st, raw)
	}
	if st, raw := f.call(o2, "", "GET", "/v1/admin/identities/"+me, ""); st != 200 || !strings.Contains(string(raw), `"role":"auditor"`) {
		t.Fatalf("get: %d %s", st, raw)
	}
}

// TestPagination: limit and cursor walk a list in stable order; bad
// values are TALOS_INVALID_INPUT.
func TestPagination(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	var dids []string
	for i := range 7 {
		w, _ := identity.GenerateWallet("a")
		dids = append(dids, w.DID().String())
		team := "team-a"
		if i%2 == 1 {
			team = "team-b"
		}
		if st := f.do("PUT", "/v1/principals/"+w.DID().String(), true, `{"team_id":"`+team+`"}`, nil); st != 200 {
			t.Fatal(st)
		}
	}
	slices.Sort(dids)
	var got []string
	cursor, pages := "", 0
	for {
		var l admin.List[admin.Principal]
		if st := f.do("GET", "/v1/principals?limit=3&cursor="+cursor, true, "", &l); st != 200 {
			t.Fatalf("page %d: %d", pages, st)
		}
		pages++
		for _, p := range l.Items {
			got = append(got, p.DID)
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if pages != 3 || !slices.Equal(got, dids) {
		t.Fatalf("%d pages, %v, want %v", pages, got, dids)
	}
	var l admin.List[admin.Principal]
	if st := f.do("GET", "/v1/principals?team=team-b", true, "", &l); st != 200 || len(l.Items) != 3 || l.NextCursor != "" {
		t.Fatalf("team filter: %d %+v", st, l)
	}
	if st := f.do("GET", "/v1/principals?limit=7", true, "", &l); st != 200 || len(l.Items) != 7 || l.NextCursor != "" {
		t.Fatalf("exact page: %d %d %q", st, len(l.Items), l.NextCursor)
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=abc", "limit=01", "limit=-1", "limit=", "limit=1&limit=2", "limit=1e2",
		"cursor=!!", "cursor=" + contracts.EncodeBase64URL([]byte("x")), "cursor=" + contracts.EncodeBase64URL([]byte("k1.")), "cursor=a=", "bogus=1"} {
		f.expectErr(q, "GET", "/v1/principals?"+q, "", string(contracts.CodeInvalidInput))
	}
	// Every admin list refuses a query parameter it does not know, the
	// identities list included.
	for _, path := range []string{"/v1/admin/identities", "/v1/principals", "/v1/capabilities/revocations", "/v1/budgets"} {
		f.expectErr(path+" bogus", "GET", path+"?bogus=1", "", string(contracts.CodeInvalidInput))
	}
}

// TestIssuedCapabilityRecords: POST /v1/capabilities records the issued
// capability (never the token); revocation marks it; the lists filter.
func TestIssuedCapabilityRecords(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	w, _ := identity.GenerateWallet("agent")
	did := w.DID().String()
	var toks []admin.TokenResponse
	for range 3 {
		var tok admin.TokenResponse
		body := fmt.Sprintf(`{"subject":%q,"grants":[{"tool":"files","actions":["read"]}],"expires_in_seconds":600}`, did)
		if st := f.do("POST", "/v1/capabilities", true, body, &tok); st != 201 {
			t.Fatal(st)
		}
		toks = append(toks, tok)
	}
	var c admin.IssuedCapability
	st, raw := f.call(nil, "Bearer "+f.session, "GET", "/v1/capabilities/"+toks[0].CapabilityHash, "")
	if st != 200 || json.Unmarshal(raw, &c) != nil || c.Subject != did || c.Revoked || len(c.Grants) != 1 || c.Issuer != f.issuer.DID().String() {
		t.Fatalf("get: %d %s", st, raw)
	}
	docs, _ := f.store.All(t.Context())
	for _, d := range docs {
		if strings.Contains(string(d.Doc), toks[0].Token) {
			t.Fatal("the token is stored")
		}
	}
	if strings.Contains(string(raw), toks[0].Token) || strings.Contains(string(raw), "nonce") {
		t.Fatalf("the record shows the token or nonce: %s", raw)
	}
	if st := f.do("POST", "/v1/capabilities/revocations", true, fmt.Sprintf(`{"capability_hash":%q}`, toks[1].CapabilityHash), nil); st != 200 {
		t.Fatal(st)
	}
	var l admin.List[admin.IssuedCapability]
	if st := f.do("GET", "/v1/capabilities?revoked=true", true, "", &l); st != 200 || len(l.Items) != 1 || l.Items[0].CapabilityHash != toks[1].CapabilityHash || l.Items[0].RevokedAt == nil {
		t.Fatalf("revoked list: %d %+v", st, l)
	}
	if st := f.do("GET", "/v1/capabilities?revoked=false&subject="+did, true, "", &l); st != 200 || len(l.Items) != 2 {
		t.Fatalf("unrevoked list: %d %+v", st, l)
	}
	var rl admin.List[admin.Revocation]
	if st := f.do("GET", "/v1/capabilities/revocations", true, "", &rl); st != 200 || len(rl.Items) != 1 || rl.Items[0].RevokedBy != f.owner.DID() {
		t.Fatalf("revocations: %d %+v", st, rl)
	}
	f.expectErr("bad revoked", "GET", "/v1/capabilities?revoked=yes", "", string(contracts.CodeInvalidInput))
	f.expectErr("bad hash", "GET", "/v1/capabilities/xyz", "", string(contracts.CodeInvalidInput))
	f.expectErr("unknown hash", "GET", "/v1/capabilities/"+strings.Repeat("0", 64), "", string(contracts.CodeNotFound))
}

// TestListsOfRolesBindingsBudgets: the remaining lists and gets.
func TestListsOfRolesBindingsBudgets(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	w, _ := identity.GenerateWallet("agent")
	did := w.DID().String()
	for _, c := range [][3]string{
		{"PUT", "/v1/principals/" + did, `{"team_id":"team-a"}`},
		{"PUT", "/v1/rbac/roles/reader", `{"permissions":["files.read"]}`},
		{"PUT", "/v1/rbac/bindings/b1", fmt.Sprintf(`{"principal_id":%q,"role_id":"reader","scope":{"scope_type":"global","attributes":{}}}`, did)},
		{"PUT", "/v1/budgets/team:team-a", `{"limit_usd":"5","mode":"hard","period":"daily"}`},
		{"PUT", "/v1/budgets/key:" + did, `{"limit_usd":"2","mode":"warn"}`},
	} {
		if st := f.do(c[0], c[1], true, c[2], nil); st != 200 {
			t.Fatalf("%s %s: %d", c[0], c[1], st)
		}
	}
	var roles admin.List[admin.RoleView]
	if st := f.do("GET", "/v1/rbac/roles", true, "", &roles); st != 200 || len(roles.Items) != 1 || roles.Items[0].ID != "reader" {
		t.Fatalf("roles: %d %+v", st, roles)
	}
	var role admin.RoleView
	if st := f.do("GET", "/v1/rbac/roles/reader", true, "", &role); st != 200 || role.Permissions[0] != "files.read" {
		t.Fatalf("role: %d %+v", st, role)
	}
	var bs admin.List[admin.BindingView]
	if st := f.do("GET", "/v1/rbac/bindings?principal_id="+did, true, "", &bs); st != 200 || len(bs.Items) != 1 || bs.Items[0].Role != "reader" {
		t.Fatalf("bindings: %d %+v", st, bs)
	}
	if st := f.do("GET", "/v1/rbac/bindings?role_id=other", true, "", &bs); st != 200 || len(bs.Items) != 0 {
		t.Fatalf("bindings filter: %d %+v", st, bs)
	}
	var b admin.BindingView
	if st := f.do("GET", "/v1/rbac/bindings/b1", true, "", &b); st != 200 || b.Principal != did {
		t.Fatalf("binding: %d %+v", st, b)
	}
	f.expectErr("missing role", "GET", "/v1/rbac/roles/none", "", string(contracts.CodeNotFound))
	f.expectErr("missing binding", "GET", "/v1/rbac/bindings/none", "", string(contracts.CodeNotFound))
	var budgets admin.List[admin.BudgetView]
	if st := f.do("GET", "/v1/budgets?limit=1", true, "", &budgets); st != 200 || len(budgets.Items) != 1 || budgets.NextCursor == "" {
		t.Fatalf("budgets: %d %+v", st, budgets)
	}
	if budgets.Items[0].Scope != "key:"+did || budgets.Items[0].LimitUSD != "2" || budgets.Items[0].RemainingUSD != "2" || !budgets.Items[0].UsageKnown {
		t.Fatalf("key budget: %+v", budgets.Items[0])
	}
	if st := f.do("GET", "/v1/budgets?cursor="+budgets.NextCursor, true, "", &budgets); st != 200 || len(budgets.Items) != 1 || budgets.Items[0].Scope != "team:team-a" || budgets.Items[0].Period != "daily" {
		t.Fatalf("budgets page 2: %d %+v", st, budgets)
	}
}

// TestReloadAndOnChange: Reload swaps in what the store holds, keeps the
// old state when a document does not parse; OnChange names each change.
func TestReloadAndOnChange(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	f := newFixtureOpts(t, nil, fixtureOpts{cfg: func(c *admin.Config) {
		c.OnChange = func(kind string) { mu.Lock(); kinds = append(kinds, kind); mu.Unlock() }
	}})
	if st := f.do("PUT", "/v1/budgets/team:a", true, `{"limit_usd":"1","mode":"hard"}`, nil); st != 200 {
		t.Fatal(st)
	}
	mu.Lock()
	if !slices.Contains(kinds, admin.KindBudget) || !slices.Contains(kinds, admin.KindIdentity) || !slices.Contains(kinds, admin.KindSession) {
		t.Errorf("OnChange kinds %v", kinds)
	}
	mu.Unlock()
	// Another replica writes the store.
	w, _ := identity.GenerateWallet("agent")
	p := admin.NewPrincipal(w.DID(), "team-z", time.Now())
	raw, _ := json.Marshal(p)
	f.store.Put(t.Context(), admin.Doc{Kind: admin.KindPrincipal, ID: p.DID, Doc: raw})
	f.store.Put(t.Context(), admin.Doc{Kind: admin.KindBudget, ID: "team:z", Doc: []byte(`{"limit_usd":"3","mode":"hard","period":"daily"}`)})
	f.store.Delete(t.Context(), admin.KindBudget, "team:a")
	if err := f.admin.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.admin.Budgets().Get("team:z"); !ok {
		t.Fatal("reload missed a budget")
	}
	if _, ok := f.admin.Budgets().Get("team:a"); ok {
		t.Fatal("reload kept a deleted budget")
	}
	// A bad document: the reload fails and changes nothing.
	f.store.Put(t.Context(), admin.Doc{Kind: admin.KindBudget, ID: "team:bad", Doc: []byte(`{"limit_usd":"x"}`)})
	f.store.Delete(t.Context(), admin.KindBudget, "team:z")
	if err := f.admin.Reload(t.Context()); err == nil {
		t.Fatal("reload of a bad document succeeded")
	}
	if _, ok := f.admin.Budgets().Get("team:z"); !ok {
		t.Fatal("a failed reload changed the state")
	}
}
