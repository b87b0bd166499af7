package config_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/config"
)

const budgetA = `{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":12.5}`

type principalKey struct{}

// fixture serves a Service behind a bearer check that records the caller.
type fixture struct {
	svc   *config.Service
	store config.Store
	mux   *http.ServeMux
}

func newFixture(t *testing.T, store config.Store, onChange func(context.Context, config.Change) error) *fixture {
	t.Helper()
	svc, err := config.New(config.Config{
		Store: store, OnChange: onChange,
		Principal: func(ctx context.Context) string { p, _ := ctx.Value(principalKey{}).(string); return p },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer ok" {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"code":"AUTH_INVALID","message":"no","retryable":false}`))
				return
			}
			h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, "admin-1")))
		}
	})
	return &fixture{svc: svc, store: store, mux: mux}
}

type errBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable *bool  `json:"retryable"`
}

func (f *fixture) do(t *testing.T, method, path string, body string, auth bool) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if auth {
		r.Header.Set("Authorization", "Bearer ok")
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w.Result(), w.Body.Bytes()
}

func TestServiceHTTP(t *testing.T) {
	var changes []config.Change
	f := newFixture(t, config.NewMemStore(), func(_ context.Context, c config.Change) error {
		changes = append(changes, c)
		return nil
	})
	resp, body := f.do(t, "PUT", "/v1/config/budget/team-a", budgetA, true)
	var put config.PutResponse
	if err := json.Unmarshal(body, &put); err != nil || resp.StatusCode != 201 || !put.Changed || put.Version.Version != 1 {
		t.Fatalf("first PUT: %d %s", resp.StatusCode, body)
	}
	canon, _ := contracts.Canonicalize([]byte(budgetA))
	sum := sha256.Sum256(canon)
	if want := hex.EncodeToString(sum[:]); put.Digest != want || resp.Header.Get("ETag") != `"sha256:`+want+`"` {
		t.Fatalf("digest %s / ETag %s, want SHA-256 of the JCS form %s", put.Digest, resp.Header.Get("ETag"), want)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/config/budget/team-a/versions/1" {
		t.Fatalf("Location %q", loc)
	}
	same := `{ "max_usd": 12.5, "scope_id":"a", "scope_type":"team", "id":"team-a", "period":"monthly" }`
	resp, body = f.do(t, "PUT", "/v1/config/budget/team-a", same, true)
	if json.Unmarshal(body, &put); resp.StatusCode != 200 || put.Changed || put.Version.Version != 1 {
		t.Fatalf("unchanged PUT: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do(t, "PUT", "/v1/config/budget/team-a", strings.Replace(budgetA, "12.5", "20", 1), true)
	if resp.StatusCode != 201 {
		t.Fatalf("second PUT: %d %s", resp.StatusCode, body)
	}
	var got config.Version
	resp, body = f.do(t, "GET", "/v1/config/budget/team-a", "", true)
	if json.Unmarshal(body, &got); resp.StatusCode != 200 || got.Version != 2 || !bytes.Contains(got.Document, []byte(`"max_usd":20`)) {
		t.Fatalf("GET latest: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do(t, "GET", "/v1/config/budget/team-a/versions/1", "", true)
	if json.Unmarshal(body, &got); resp.StatusCode != 200 || string(got.Document) != string(canon) {
		t.Fatalf("GET version 1: %d %s", resp.StatusCode, body)
	}
	var list config.VersionsResponse
	resp, body = f.do(t, "GET", "/v1/config/budget/team-a/versions?limit=1", "", true)
	if json.Unmarshal(body, &list); resp.StatusCode != 200 || len(list.Versions) != 1 || list.NextAfter != 1 {
		t.Fatalf("versions page 1: %d %s", resp.StatusCode, body)
	}
	list = config.VersionsResponse{}
	resp, body = f.do(t, "GET", "/v1/config/budget/team-a/versions?limit=1&after=1", "", true)
	if json.Unmarshal(body, &list); resp.StatusCode != 200 || len(list.Versions) != 1 || list.Versions[0].Version != 2 || list.NextAfter != 0 {
		t.Fatalf("versions page 2: %d %s", resp.StatusCode, body)
	}
	if len(changes) != 2 || changes[1].PreviousDigest != changes[0].Digest || changes[0].Principal != "admin-1" ||
		changes[0].Kind != "budget" || changes[0].Name != "team-a" {
		t.Fatalf("hook saw %+v", changes)
	}
}

func TestServiceRejects(t *testing.T) {
	f := newFixture(t, config.NewMemStore(), nil)
	big := `{"id":"team-a","scope_type":"team","scope_id":"` + strings.Repeat("x", config.MaxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, body, code string
		auth                           bool
	}{
		{"unknown kind", "PUT", "/v1/config/weather/team-a", budgetA, string(contracts.CodeNotFound), true},
		{"bad name", "PUT", "/v1/config/budget/Team_A", budgetA, string(contracts.CodeInvalidInput), true},
		{"long name", "PUT", "/v1/config/budget/" + strings.Repeat("a", 65), budgetA, string(contracts.CodeInvalidInput), true},
		{"not JSON", "PUT", "/v1/config/budget/team-a", `{"id":`, string(contracts.CodeInvalidInput), true},
		{"duplicate key", "PUT", "/v1/config/budget/team-a", `{"id":"team-a","id":"team-a","scope_type":"team","scope_id":"a"}`, string(contracts.CodeInvalidInput), true},
		{"case-folded key", "PUT", "/v1/config/budget/team-a", `{"id":"team-a","ID":"team-a","scope_type":"team","scope_id":"a"}`, string(contracts.CodeSchemaValidationError), true},
		{"unknown field", "PUT", "/v1/config/budget/team-a", `{"id":"team-a","scope_type":"team","scope_id":"a","owner":"x"}`, string(contracts.CodeSchemaValidationError), true},
		{"bad enum", "PUT", "/v1/config/budget/team-a", `{"id":"team-a","scope_type":"org","scope_id":"a"}`, string(contracts.CodeSchemaValidationError), true},
		{"negative", "PUT", "/v1/config/budget/team-a", `{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":-1}`, string(contracts.CodeSchemaValidationError), true},
		{"id mismatch", "PUT", "/v1/config/budget/team-a", `{"id":"team-b","scope_type":"team","scope_id":"a"}`, string(contracts.CodeSchemaValidationError), true},
		{"trailing data", "PUT", "/v1/config/budget/team-a", budgetA + `{}`, string(contracts.CodeInvalidInput), true},
		{"policy missing version", "PUT", "/v1/config/policy/p", `{"id":"p","strategy":"round_robin"}`, string(contracts.CodeSchemaValidationError), true},
		{"oversized", "PUT", "/v1/config/budget/team-a", big, string(contracts.CodeInvalidInput), true},
		{"missing", "GET", "/v1/config/budget/nobody", "", string(contracts.CodeNotFound), true},
		{"missing versions", "GET", "/v1/config/budget/nobody/versions", "", string(contracts.CodeNotFound), true},
		{"missing version", "GET", "/v1/config/budget/nobody/versions/7", "", string(contracts.CodeNotFound), true},
		{"bad version", "GET", "/v1/config/budget/team-a/versions/01", "", string(contracts.CodeInvalidInput), true},
		{"bad limit", "GET", "/v1/config/budget/team-a/versions?limit=0", "", string(contracts.CodeInvalidInput), true},
		{"bad after", "GET", "/v1/config/budget/team-a/versions?after=-1", "", string(contracts.CodeInvalidInput), true},
		{"no credential", "PUT", "/v1/config/budget/team-a", budgetA, string(contracts.CodeAuthInvalid), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, tc.method, tc.path, tc.body, tc.auth)
			var e errBody
			if err := json.Unmarshal(body, &e); err != nil || e.Code != tc.code || resp.StatusCode != contracts.HTTPStatus(contracts.Code(tc.code)) || e.Message == "" || e.Retryable == nil {
				t.Fatalf("got %d %s, want code %s", resp.StatusCode, body, tc.code)
			}
		})
	}
	r := httptest.NewRequest("PUT", "/v1/config/budget/team-a", strings.NewReader(budgetA))
	r.Header.Set("Authorization", "Bearer ok")
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Fatalf("text/plain body: %d", w.Code)
	}
	if _, err := f.store.Latest(t.Context(), "budget", "team-a"); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("a rejected PUT stored something: %v", err)
	}
}

// TestServiceHookFailure: a failing audit hook is a retryable INTERNAL error
// whose message says nothing of the cause, and nothing is stored.
func TestServiceHookFailure(t *testing.T) {
	f := newFixture(t, config.NewMemStore(), func(context.Context, config.Change) error { return errors.New("audit log unavailable") })
	resp, body := f.do(t, "PUT", "/v1/config/budget/team-a", budgetA, true)
	var e errBody
	json.Unmarshal(body, &e)
	if resp.StatusCode != 500 || e.Code != string(contracts.CodeInternal) || e.Retryable == nil || !*e.Retryable || strings.Contains(e.Message, "unavailable") {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if _, err := f.store.Latest(t.Context(), "budget", "team-a"); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("an unaudited change was stored: %v", err)
	}
}

// TestFileStoreRestart: versions survive a reopen, an unaudited version is
// not in the file, a torn last line is cut off, other damage is refused.
func TestFileStoreRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "config-versions.jsonl")
	fs, err := config.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fail := false
	svc, err := config.New(config.Config{Store: fs, OnChange: func(context.Context, config.Change) error {
		if fail {
			return errors.New("no audit")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{budgetA, strings.Replace(budgetA, "12.5", "30", 1)} {
		if _, _, err := svc.Put(ctx, "budget", "team-a", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	fail = true
	svc.Put(ctx, "budget", "team-a", []byte(strings.Replace(budgetA, "12.5", "99", 1)))
	fs.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"budget","name":"team-a","version":3,"dig`)
	f.Close()

	fs2, err := config.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fs2.Latest(ctx, "budget", "team-a")
	if err != nil || v.Version != 2 || !bytes.Contains(v.Document, []byte(`"max_usd":30`)) {
		t.Fatalf("after reopen: %+v %v", v, err)
	}
	svc2, _ := config.New(config.Config{Store: fs2})
	if v, _, err := svc2.Put(ctx, "budget", "team-a", []byte(budgetA)); err != nil || v.Version != 3 {
		t.Fatalf("Put after reopen: %+v %v", v, err)
	}
	fs2.Close()
	raw, _ := os.ReadFile(path)
	for _, bad := range [][]byte{
		bytes.Replace(raw, []byte(`"version":1`), []byte(`"version":7`), 1),
		bytes.Replace(raw, []byte(`"max_usd":30`), []byte(`"max_usd":31`), 1),
		bytes.Replace(raw, []byte(`"max_usd":30`), []byte(`"max_usd": 30`), 1),
	} {
		os.WriteFile(path, bad, 0o600)
		if _, err := config.OpenFile(path); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("damaged file opened: %v", err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := config.New(config.Config{}); err == nil {
		t.Fatal("New without a store")
	}
	if _, err := config.New(config.Config{Store: config.NewMemStore(), Kinds: []config.Kind{{Name: "Bad", Check: config.CheckBudget}}}); err == nil {
		t.Fatal("New with a bad kind name")
	}
	if _, err := config.New(config.Config{Store: config.NewMemStore(), Kinds: []config.Kind{{Name: "x"}}}); err == nil {
		t.Fatal("New with a kind without Check")
	}
}

// FuzzPut puts arbitrary documents: a refusal is a *contracts.Error and
// stores nothing; an accepted document is stored canonical under its digest.
func FuzzPut(f *testing.F) {
	f.Add([]byte(budgetA), "budget")
	f.Add([]byte(`{"id":"fz","version":1,"strategy":"round_robin"}`), "policy")
	f.Add([]byte(`{"id":"fz","scope_type":"team","scope_id":"a","max_usd":1e400}`), "budget")
	f.Add([]byte("\xff\xfe"), "budget")
	f.Add([]byte(`[]`), "weather")
	store := config.NewMemStore()
	svc, err := config.New(config.Config{Store: store})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte, kind string) {
		before, _ := store.Versions(context.Background(), kind, "fz", 0, config.MaxVersionsPage)
		v, _, err := svc.Put(context.Background(), kind, "fz", doc)
		if err != nil {
			var ce *contracts.Error
			if !errors.As(err, &ce) || ce.Code == contracts.CodeInternal {
				t.Fatalf("Put(%q): %v is not a typed refusal", doc, err)
			}
			after, _ := store.Versions(context.Background(), kind, "fz", 0, config.MaxVersionsPage)
			if len(after) != len(before) {
				t.Fatal("a rejected Put stored a version")
			}
			return
		}
		canon, err := contracts.Canonicalize(v.Document)
		if err != nil || !bytes.Equal(canon, v.Document) {
			t.Fatalf("stored document is not canonical: %s", v.Document)
		}
		sum := sha256.Sum256(canon)
		if hex.EncodeToString(sum[:]) != v.Digest {
			t.Fatal("digest does not match the stored document")
		}
	})
}

// TestBudgetSchemaEmbedded: the budget kind is checked against the
// contract schema the library embeds (RegisterKind drops a schema the
// library lacks, so this pins that the check is not silently off).
func TestBudgetSchemaEmbedded(t *testing.T) {
	found := false
	for _, n := range contracts.SchemaNames() {
		found = found || n == "ai_gateway/budget"
	}
	if !found {
		t.Fatal("contracts no longer embeds ai_gateway/budget: the budget kind lost its schema check")
	}
	for _, k := range config.DefaultKinds() {
		if k.Name == "budget" && k.Schema != "ai_gateway/budget" {
			t.Fatalf("budget kind schema %q", k.Schema)
		}
	}
}
