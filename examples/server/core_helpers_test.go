package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// handlerTransport is an http.RoundTripper that serves requests with an
// in-process handler: clients talk to the server without a socket.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	// The handler sees a server-side request.
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	t.h.ServeHTTP(rec, sr)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// attesting returns a transport that signs every request with signer for
// the opcode of its route in the server's own route table (the table the
// server verifies with: clients never copy opcodes), then sends it with next.
func attesting(ts *testServer, signer *identity.AttestationSigner, next http.RoundTripper) http.RoundTripper {
	return &identity.AttestingTransport{Signer: signer, Routes: ts.core.routes, Base: next}
}

// agent is a test agent: its own wallet, registered with the server as a
// principal of team, and an HTTP client that attests every request.
type agent struct {
	t      *testing.T
	ts     *testServer
	w      *identity.Wallet
	did    string
	team   string
	signer *identity.AttestationSigner
	client *http.Client
	base   string // "http://talos.test" in process, or the served URL
}

// newAgent creates a wallet and registers it (PUT /v1/principals/{did}).
func newAgent(t *testing.T, ts *testServer, name, team string) *agent {
	t.Helper()
	a := unregisteredAgent(t, ts, name, team)
	body := fmt.Sprintf(`{"team_id":%q}`, team)
	var p map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/principals/"+a.did, ts.cred, []byte(body)), &p); st != http.StatusOK {
		t.Fatalf("register %s: %d %v", name, st, p)
	}
	return a
}

// unregisteredAgent creates a wallet and an attesting client for ts
// without registering the key.
func unregisteredAgent(t *testing.T, ts *testServer, name, team string) *agent {
	t.Helper()
	w, err := identity.GenerateWallet(name)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{t: t, ts: ts, w: w, did: w.DID().String(), team: team, base: "http://talos.test"}
	a.signer, err = identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	var next http.RoundTripper = handlerTransport{ts.Handler()}
	if ts.url != "" {
		next, a.base = http.DefaultTransport, ts.url
	}
	a.client = &http.Client{Transport: attesting(ts, a.signer, next), Timeout: 20 * time.Second}
	return a
}

// on returns a copy of a that talks to another server.
func (a *agent) on(ts *testServer) *agent {
	b := *a
	b.ts, b.base = ts, "http://talos.test"
	var next http.RoundTripper = handlerTransport{ts.Handler()}
	if ts.url != "" {
		next, b.base = http.DefaultTransport, ts.url
	}
	b.client = &http.Client{Transport: attesting(ts, a.signer, next), Timeout: 20 * time.Second}
	return &b
}

// call sends an attested request and decodes the JSON answer into v.
func (a *agent) call(method, path string, body any, v any) int {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return decode(a.t, resp, v)
}

// issue asks the server (admin) for a capability for a with grants.
func issue(t *testing.T, ts *testServer, subject string, readOnly bool, grants ...capability.Grant) tokenBody {
	t.Helper()
	req := issueRequest{Subject: subject, Grants: grants, ExpiresIn: 3600, ReadOnly: readOnly}
	raw, _ := json.Marshal(req)
	var tok tokenBody
	if st := decode(t, ts.do(t, "POST", "/v1/capabilities", ts.cred, raw), &tok); st != http.StatusCreated {
		t.Fatalf("issue: %d", st)
	}
	return tok
}

func grant(tool string, actions ...string) capability.Grant {
	return capability.Grant{Tool: tool, Actions: actions}
}

// auditSize is the current audit log size.
func auditSize(t *testing.T, ts *testServer) uint64 {
	t.Helper()
	n, err := ts.core.log.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// auditedSince counts the audit events appended since index from by
// surface, method and outcome ("a2a POST success").
func auditedSince(t *testing.T, ts *testServer, from uint64) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := from; i < auditSize(t, ts); i++ {
		raw, err := ts.core.log.Entry(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		var ev audit.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		counts[ev.SurfaceID+" "+ev.HTTP.Method+" "+ev.Outcome]++
	}
	return counts
}

// auditor verifies audit events through the public routes only, trusting
// nothing but the verifier key published by GET /v1/identity.
type auditor struct {
	t      *testing.T
	ts     *testServer
	client *http.Client
	base   string
	vkey   string
	cp     audit.Checkpoint
	// cred is sent as the bearer credential: an auditor may read entries
	// (entry bundles, entry_b64u). Empty: an anonymous verifier.
	cred string
}

func newAuditor(t *testing.T, ts *testServer) *auditor {
	t.Helper()
	au := &auditor{t: t, ts: ts, client: &http.Client{Transport: handlerTransport{ts.Handler()}}, base: "http://talos.test", cred: ts.cred}
	if ts.url != "" {
		au.client, au.base = &http.Client{}, ts.url
	}
	var id struct {
		DID  string `json:"did"`
		VKey string `json:"audit_verifier_key"`
	}
	if st := au.getJSON("/v1/identity", &id); st != 200 || id.VKey == "" {
		t.Fatalf("identity: %d %+v", st, id)
	}
	au.vkey = id.VKey
	return au
}

func (au *auditor) get(path string) (int, []byte) {
	au.t.Helper()
	req, err := http.NewRequest("GET", au.base+path, nil)
	if err != nil {
		au.t.Fatal(err)
	}
	if au.cred != "" {
		req.Header.Set("Authorization", "Bearer "+au.cred)
	}
	resp, err := au.client.Do(req)
	if err != nil {
		au.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		au.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (au *auditor) getJSON(path string, v any) int {
	au.t.Helper()
	st, b := au.get(path)
	if err := json.Unmarshal(b, v); err != nil {
		au.t.Fatalf("GET %s: %d %q: %v", path, st, b, err)
	}
	return st
}

// checkpoint fetches and verifies the latest signed checkpoint; it also
// checks that it extends the previous one the auditor saw.
func (au *auditor) checkpoint() audit.Checkpoint {
	au.t.Helper()
	st, note := au.get("/v1/audit/checkpoint")
	if st != 200 {
		au.t.Fatalf("checkpoint: %d %s", st, note)
	}
	cp, err := audit.VerifyCheckpoint(note, au.vkey)
	if err != nil {
		au.t.Fatalf("checkpoint does not verify: %v", err)
	}
	if au.cp.Size > 0 && cp.Size >= au.cp.Size {
		var pb struct {
			Proof []string `json:"proof"`
		}
		if st := au.getJSON(fmt.Sprintf("/v1/audit/proofs/consistency?old_size=%d&tree_size=%d", au.cp.Size, cp.Size), &pb); st != 200 {
			au.t.Fatalf("consistency proof: %d", st)
		}
		if err := audit.VerifyConsistency(parseHashes(au.t, pb.Proof), au.cp, cp); err != nil {
			au.t.Fatalf("checkpoint of size %d does not extend size %d: %v", cp.Size, au.cp.Size, err)
		}
	}
	au.cp = cp
	return cp
}

// verifyIncluded fetches entry index with its inclusion proof under the
// latest checkpoint, verifies it and returns the parsed event.
func (au *auditor) verifyIncluded(index uint64) *audit.Event {
	au.t.Helper()
	cp := au.cp
	if index >= cp.Size {
		cp = au.checkpoint()
	}
	var pb proofBody
	if st := au.getJSON(fmt.Sprintf("/v1/audit/proofs/inclusion?index=%d&tree_size=%d", index, cp.Size), &pb); st != 200 {
		au.t.Fatalf("inclusion proof of %d: %d", index, st)
	}
	entry, err := decodeB64u(pb.EntryB64u)
	if err != nil {
		au.t.Fatal(err)
	}
	leaf := audit.LeafHash(entry)
	if err := audit.VerifyInclusion(parseHashes(au.t, pb.Proof), cp, index, leaf); err != nil {
		au.t.Fatalf("entry %d is not included under the checkpoint: %v", index, err)
	}
	ev, err := audit.ParseEvent(entry)
	if err != nil {
		au.t.Fatalf("entry %d: %v", index, err)
	}
	return ev
}

func parseHashes(t *testing.T, ss []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		h, err := tlog.ParseHash(s)
		if err != nil {
			t.Fatalf("proof hash %q: %v", s, err)
		}
		out[i] = h
	}
	return out
}

func decodeB64u(s string) ([]byte, error) { return contracts.DecodeBase64URL(s) }

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

type budgetUsage struct {
	Scope     string `json:"scope"`
	Limit     string `json:"limit_usd"`
	Used      string `json:"used_usd"`
	Reserved  string `json:"reserved_usd"`
	Remaining string `json:"remaining_usd"`
	Mode      string `json:"mode"`
}

func putBudget(t *testing.T, ts *testServer, scope, limit, mode string) {
	t.Helper()
	body := fmt.Sprintf(`{"limit_usd":%q,"mode":%q,"period":"monthly"}`, limit, mode)
	var out map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/budgets/"+scope, ts.cred, []byte(body)), &out); st != 200 {
		t.Fatalf("PUT budget %s: %d %v", scope, st, out)
	}
}

func getBudget(t *testing.T, ts *testServer, scope, team string) budgetUsage {
	t.Helper()
	var u budgetUsage
	if st := decode(t, ts.do(t, "GET", "/v1/budgets/"+scope+"?team="+team, ts.cred, nil), &u); st != 200 {
		t.Fatalf("GET budget %s: %d %+v", scope, st, u)
	}
	return u
}

// pgTables are the tables a server with PostgreSQL creates (after the
// test's table prefix).
var pgTables = []string{"admin_docs", "a2a_objects", "a2a_events", "a2a_frames", "a2a_tasks", "a2a_tasks_push", "audit_head", "audit_entries", "audit_hashes", "secrets", "config_versions", "mcp_idempotency"}

// dropTablesAtEnd drops the tables of a server on PostgreSQL when the test
// ends, on its own connection (the server's pool may be closed by then).
func dropTablesAtEnd(t *testing.T, url, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping the test tables: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, tb := range pgTables {
			if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+prefix+tb); err != nil {
				t.Errorf("dropping %s%s: %v", prefix, tb, err)
			}
		}
	})
}
