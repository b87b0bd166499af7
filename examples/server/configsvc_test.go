package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/internal/testenv"
)

// The config service's store semantics, hook and fuzzing are tested in
// gateway/config (and configtest on every store); these are the server's
// route tests over its wiring: admin credential, file or PostgreSQL store,
// the audit hook.

const budgetA = `{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":12.5}`

func TestConfigServiceLifecycle(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	before, err := ts.core.log.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var put config.PutResponse
	resp := ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA))
	if st := decode(t, resp, &put); st != http.StatusCreated || !put.Changed || put.Version.Version != 1 {
		t.Fatalf("first PUT: %d %+v", st, put)
	}
	canon, err := contracts.Canonicalize([]byte(budgetA))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	if want := hex.EncodeToString(sum[:]); put.Digest != want {
		t.Fatalf("digest %s, want SHA-256 of the JCS form %s", put.Digest, want)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/config/budget/team-a/versions/1" {
		t.Fatalf("Location %q", loc)
	}

	// The same document with other whitespace and key order: no new version.
	same := `{ "max_usd": 12.5, "scope_id":"a", "scope_type":"team", "id":"team-a", "period":"monthly" }`
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(same)), &put); st != http.StatusOK || put.Changed || put.Version.Version != 1 {
		t.Fatalf("unchanged PUT: %d %+v", st, put)
	}
	v2 := strings.Replace(budgetA, "12.5", "20", 1)
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(v2)), &put); st != http.StatusCreated || put.Version.Version != 2 {
		t.Fatalf("second PUT: %d %+v", st, put)
	}

	var got config.Version
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a", ts.cred, nil), &got); st != 200 || got.Version != 2 {
		t.Fatalf("GET latest: %d %+v", st, got)
	}
	if !bytes.Contains(got.Document, []byte(`"max_usd":20`)) {
		t.Fatalf("latest document %s", got.Document)
	}
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a/versions/1", ts.cred, nil), &got); st != 200 || got.Version != 1 || string(got.Document) != string(canon) {
		t.Fatalf("GET version 1: %d %+v", st, got)
	}
	var list config.VersionsResponse
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a/versions?limit=1", ts.cred, nil), &list); st != 200 || len(list.Versions) != 1 || list.NextAfter != 1 {
		t.Fatalf("versions page 1: %d %+v", st, list)
	}
	list = config.VersionsResponse{}
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a/versions?limit=1&after=1", ts.cred, nil), &list); st != 200 || len(list.Versions) != 1 || list.Versions[0].Version != 2 || list.NextAfter != 0 {
		t.Fatalf("versions page 2: %d %+v", st, list)
	}

	// Two new versions, two audit events by the owner (its session).
	after, err := ts.core.log.Size(t.Context())
	if err != nil || after-before != 2 {
		t.Fatalf("%d audit events for 2 new versions (%v)", after-before, err)
	}
	for i := before; i < after; i++ {
		entry, _ := ts.core.log.Entry(t.Context(), i)
		ev, err := audit.ParseEvent(entry)
		if err != nil || ev.SurfaceID != opConfig || ev.Principal != audit.BearerPrincipal(ts.owner.DID(), "admin") {
			t.Fatalf("audit event %d: %+v %v", i, ev, err)
		}
	}
}

func TestConfigServicePolicy(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	doc := `{"id":"default","version":1,"strategy":"weighted_hash","timeout_ms":30000,"retries":{"max_attempts":3,"backoff_ms":500,"backoff_multiplier":2}}`
	var put config.PutResponse
	if st := decode(t, ts.do(t, "PUT", "/v1/config/policy/default", ts.cred, []byte(doc)), &put); st != http.StatusCreated {
		t.Fatalf("PUT policy: %d", st)
	}
}

func TestConfigServiceRejects(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	big := `{"id":"team-a","scope_type":"team","scope_id":"` + strings.Repeat("x", config.MaxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, auth, body, code string
	}{
		{"no credential", "PUT", "/v1/config/budget/team-a", "", budgetA, string(contracts.CodeAuthInvalid)},
		{"wrong credential", "GET", "/v1/config/budget/team-a", adminCredentialPfx + "AAAA", "", string(contracts.CodeAuthInvalid)},
		{"unknown kind", "PUT", "/v1/config/weather/team-a", "cred", budgetA, string(contracts.CodeNotFound)},
		{"bad name", "PUT", "/v1/config/budget/Team_A", "cred", budgetA, string(contracts.CodeInvalidInput)},
		{"not JSON", "PUT", "/v1/config/budget/team-a", "cred", `{"id":`, string(contracts.CodeInvalidInput)},
		{"duplicate key", "PUT", "/v1/config/budget/team-a", "cred", `{"id":"team-a","id":"team-a","scope_type":"team","scope_id":"a"}`, string(contracts.CodeInvalidInput)},
		{"unknown field", "PUT", "/v1/config/budget/team-a", "cred", `{"id":"team-a","scope_type":"team","scope_id":"a","owner":"x"}`, string(contracts.CodeSchemaValidationError)},
		{"bad enum", "PUT", "/v1/config/budget/team-a", "cred", `{"id":"team-a","scope_type":"org","scope_id":"a"}`, string(contracts.CodeSchemaValidationError)},
		{"negative", "PUT", "/v1/config/budget/team-a", "cred", `{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":-1}`, string(contracts.CodeSchemaValidationError)},
		{"id mismatch", "PUT", "/v1/config/budget/team-a", "cred", `{"id":"team-b","scope_type":"team","scope_id":"a"}`, string(contracts.CodeSchemaValidationError)},
		{"trailing data", "PUT", "/v1/config/budget/team-a", "cred", budgetA + `{}`, string(contracts.CodeInvalidInput)},
		{"policy missing version", "PUT", "/v1/config/policy/p", "cred", `{"id":"p","strategy":"round_robin"}`, string(contracts.CodeSchemaValidationError)},
		{"oversized", "PUT", "/v1/config/budget/team-a", "cred", big, string(contracts.CodeInvalidInput)},
		{"missing", "GET", "/v1/config/budget/nobody", "cred", "", string(contracts.CodeNotFound)},
		{"missing version", "GET", "/v1/config/budget/nobody/versions/7", "cred", "", string(contracts.CodeNotFound)},
		{"bad version", "GET", "/v1/config/budget/team-a/versions/01", "cred", "", string(contracts.CodeInvalidInput)},
		{"bad limit", "GET", "/v1/config/budget/team-a/versions?limit=0", "cred", "", string(contracts.CodeInvalidInput)},
		{"unknown route", "GET", "/v1/nothing", "", "", string(contracts.CodeNotFound)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := tc.auth
			if auth == "cred" {
				auth = ts.cred
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			var e errBody
			st := decode(t, ts.do(t, tc.method, tc.path, auth, body), &e)
			if e.Code != tc.code || st != contracts.HTTPStatus(contracts.Code(tc.code)) || e.Message == "" || e.Retryable == nil {
				t.Fatalf("got %d %+v, want code %s with status %d", st, e, tc.code, contracts.HTTPStatus(contracts.Code(tc.code)))
			}
		})
	}
	// Nothing was stored by any of them.
	if _, err := ts.configs.Latest(t.Context(), "budget", "team-a"); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("a rejected PUT stored something: %v", err)
	}
}

func TestConfigServiceConcurrentPuts(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	runConcurrentPuts(t, ts.configs)
}

func runConcurrentPuts(t *testing.T, cs *config.Service) {
	t.Helper()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			doc := fmt.Sprintf(`{"id":"team-c","scope_type":"team","scope_id":"c","max_usd":%d}`, i+1)
			if _, _, err := cs.Put(t.Context(), "budget", "team-c", []byte(doc)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent PUT failed: %v", err)
	}
	vs, err := cs.Versions(t.Context(), "budget", "team-c", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != n {
		t.Fatalf("%d versions after %d distinct PUTs", len(vs), n)
	}
	for i, v := range vs {
		if v.Version != int64(i+1) {
			t.Fatalf("versions not dense: %+v", vs)
		}
	}
}

// TestConfigServicePostgres runs the routes on PostgreSQL with the replica
// split (the replica is the same database here), each change audited.
func TestConfigServicePostgres(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	cfg := testConfig(t)
	cfg.PostgresURL = dsn
	cfg.PostgresReplicaURL = dsn
	cfg.tablePrefix = testenv.Unique(t) + "_"
	ts := newTestServer(t, cfg)
	dropTablesAtEnd(t, dsn, cfg.tablePrefix)
	if _, _, err := ts.configs.Put(t.Context(), "budget", "team-0", []byte(strings.ReplaceAll(budgetA, "team-a", "team-0"))); err != nil {
		t.Fatalf("Put: %v (cause %v)", err, errors.Unwrap(err))
	}
	var put config.PutResponse
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA)), &put); st != 201 || put.Version.Version != 1 {
		t.Fatalf("PUT: %d %+v", st, put)
	}
	if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA)), &put); st != 200 || put.Changed {
		t.Fatalf("unchanged PUT: %d %+v", st, put)
	}
	var got config.Version
	if st := decode(t, ts.do(t, "GET", "/v1/config/budget/team-a/versions/1", ts.cred, nil), &got); st != 200 || got.Digest != put.Digest {
		t.Fatalf("GET: %d %+v", st, got)
	}
	runConcurrentPuts(t, ts.configs)
}

// FuzzConfigPut drives the PUT route with arbitrary bodies: never a 5xx,
// always the contract error body on failure, and a failed PUT stores nothing.
func FuzzConfigPut(f *testing.F) {
	f.Add([]byte(budgetA), "budget")
	f.Add([]byte(`{"id":"p","version":1,"strategy":"round_robin"}`), "policy")
	f.Add([]byte(`{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":1e400}`), "budget")
	f.Add([]byte("\xff\xfe"), "budget")
	f.Add([]byte(`[]`), "weather")
	cfg := DefaultConfig()
	cfg.DataDir = f.TempDir() + "/data"
	cfg.TraceExporter = "none"
	cfg.KEKRotation = 0
	cfg.stdout = &syncBuffer{}
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close(context.Background())
	cred := parseCredential(cfg.stdout.(*syncBuffer).String())
	ts := &testServer{Server: s}
	nameRE := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	f.Fuzz(func(t *testing.T, body []byte, kind string) {
		if !nameRE.MatchString(kind) || len(kind) > 32 {
			return
		}
		before, _ := s.configs.Versions(context.Background(), kind, "fz", 0, config.MaxVersionsPage)
		resp := ts.do(t, "PUT", "/v1/config/"+kind+"/fz", cred, body)
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q", resp.StatusCode, body)
		}
		if resp.StatusCode >= 300 {
			var e errBody
			decode(t, resp, &e)
			if e.Code == "" || contracts.HTTPStatus(contracts.Code(e.Code)) != resp.StatusCode {
				t.Fatalf("error body %+v with status %d", e, resp.StatusCode)
			}
			after, _ := s.configs.Versions(context.Background(), kind, "fz", 0, config.MaxVersionsPage)
			if len(after) != len(before) {
				t.Fatalf("a rejected PUT stored a version")
			}
			return
		}
		var put config.PutResponse
		decode(t, resp, &put)
		got, err := s.configs.Version(context.Background(), kind, "fz", put.Version.Version)
		if err != nil {
			t.Fatal(err)
		}
		canon, err := contracts.Canonicalize(got.Document)
		if err != nil || !bytes.Equal(canon, got.Document) {
			t.Fatalf("stored document is not canonical: %s", got.Document)
		}
		sum := sha256.Sum256(canon)
		if hex.EncodeToString(sum[:]) != put.Digest {
			t.Fatal("digest does not match the stored document")
		}
	})
}

func TestConfigServiceSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	for _, doc := range []string{budgetA, strings.Replace(budgetA, "12.5", "30", 1)} {
		if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(doc)), nil); st != 201 {
			t.Fatalf("PUT: %d", st)
		}
	}
	ts.Close(context.Background())

	path := filepath.Join(cfg.DataDir, configFileName)
	// A crash in the middle of an append leaves a torn line: it is cut off.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"budget","name":"team-a","version":3,"dig`)
	f.Close()

	again := newTestServer(t, cfg)
	var got config.Version
	if st := decode(t, again.do(t, "GET", "/v1/config/budget/team-a", first(ts.cred, again.cred), nil), &got); st != 200 || got.Version != 2 ||
		!bytes.Contains(got.Document, []byte(`"max_usd":30`)) {
		t.Fatalf("after restart: %d %+v", st, got)
	}
	var put config.PutResponse
	if st := decode(t, again.do(t, "PUT", "/v1/config/budget/team-a", ts.cred, []byte(budgetA)), &put); st != 201 || put.Version.Version != 3 {
		t.Fatalf("PUT after restart: %d %+v", st, put)
	}
	again.Close(context.Background())

	// Damage before the tail is an error, not silent loss.
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(raw, []byte(`"version":1`), []byte(`"version":7`), 1), 0o600)
	cfg.stdout = &syncBuffer{}
	if _, err := New(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged config file: %v", err)
	}
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestConfigVersionWireNames checks the wire form of a stored version (the
// JSON names of config.Version), so that the routes keep their shape.
func TestConfigVersionWireNames(t *testing.T) {
	raw, err := json.Marshal(config.Version{Kind: "budget", Name: "n", Version: 1, Digest: "d", Document: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"kind"`, `"name"`, `"version"`, `"digest"`, `"created_at"`, `"document"`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Fatalf("%s lacks %s", raw, k)
		}
	}
}
