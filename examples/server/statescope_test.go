package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// TestProductionRefusesPerProcessState: -production without Redis and
// PostgreSQL exits 1 before it creates its data directory, naming each
// per-process state, the settings that fix it and -single-node.
func TestProductionRefusesPerProcessState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key := contracts.EncodeBase64URL(bytes.Repeat([]byte{7}, 32))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-production", "-data", dir, "-listen", "127.0.0.1:0", "-trace-exporter", "none"},
		func(k string) string {
			if k == masterKeyEnv {
				return key
			}
			return ""
		}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"revocations", "nonces", "rate_limits", "budgets", "admin", "a2a", "audit",
		"TALOS_REDIS_URL", "TALOS_POSTGRES_URL", "-single-node"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), key) {
		t.Fatal("the master key was printed")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory exists after a refused start: %v", err)
	}
	if stdout.Len() != 0 {
		t.Fatalf("printed for a server that never served:\n%s", stdout.String())
	}

	// The same rule through New, with a typed error; Redis alone still
	// leaves the PostgreSQL state per process.
	cfg := productionConfig(t)
	cfg.RedisURL = "redis://127.0.0.1:1/0"
	_, err := New(t.Context(), cfg, nil)
	if !errors.Is(err, contracts.ErrInvalidInput) || strings.Contains(err.Error(), "revocations") ||
		!strings.Contains(err.Error(), "admin") || !strings.Contains(err.Error(), "-postgres") {
		t.Fatalf("production with Redis only: %v", err)
	}
}

func productionConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Production = true
	cfg.MasterKey = bytes.Repeat([]byte{9}, 32)
	return cfg
}

// logBuffer returns a logger writing text lines to the returned buffer.
func logBuffer() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// warnLines returns the log's Warn lines about per-process state.
func warnLines(log string) []string {
	var out []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "state is per process") {
			out = append(out, l)
		}
	}
	return out
}

// TestProductionSingleNodeStarts: with -single-node, production starts on
// embedded stores, logs one Warn naming the per-process state, and
// /health/ready lists it next to its usual fields.
func TestProductionSingleNodeStarts(t *testing.T) {
	cfg := productionConfig(t)
	cfg.SingleNode = true
	log, buf := logBuffer()
	cfg.stdout = &syncBuffer{}
	s, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatalf("production -single-node: %v", err)
	}
	defer s.Close(context.Background())
	lines := warnLines(buf.String())
	if len(lines) != 1 || !strings.Contains(lines[0], "revocations,nonces,rate_limits,budgets") ||
		!strings.Contains(lines[0], "single_node=true") {
		t.Fatalf("warning lines %q in:\n%s", lines, buf.String())
	}
	code, body := readyBody(t, s.Handler())
	if code != http.StatusOK || body.Status != "ok" || body.check("data_dir") != "ok" {
		t.Fatalf("ready %d %+v", code, body)
	}
	if body.State["revocations"] != scopeMemory || body.State["admin"] != scopeFile || body.State["audit"] != scopeFile {
		t.Fatalf("state %v", body.State)
	}
	for _, want := range []string{"revocations", "nonces", "rate_limits", "budgets", "admin", "a2a", "config_versions", "secrets", "audit"} {
		if !slices.Contains(body.PerProcess, want) {
			t.Errorf("per_process %v lacks %s", body.PerProcess, want)
		}
	}
}

type readyState struct {
	Status     string                       `json:"status"`
	Checks     map[string]map[string]string `json:"checks"`
	State      map[string]string            `json:"state"`
	PerProcess []string                     `json:"per_process"`
}

func (r readyState) check(name string) string { return r.Checks[name]["status"] }

func readyBody(t *testing.T, h http.Handler) (int, readyState) {
	t.Helper()
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "/health/ready", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(rec, req)
	var body readyState
	if err := json.Unmarshal(rec.body.Bytes(), &body); err != nil {
		t.Fatalf("ready body %q: %v", rec.body.String(), err)
	}
	if ct := rec.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	return rec.status, body
}

// TestStateScopeWarningAndReady: out of production the embedded defaults
// log one Warn line and the live server's /health/ready names the state;
// a draining server still answers 503 with it.
func TestStateScopeWarningAndReady(t *testing.T) {
	cfg := testConfig(t)
	log, buf := logBuffer()
	cfg.stdout = &syncBuffer{}
	s, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if lines := warnLines(buf.String()); len(lines) != 1 || !strings.Contains(lines[0], "single_node=false") {
		t.Fatalf("warning lines %q in:\n%s", lines, buf.String())
	}

	ts := newTestServer(t, testConfig(t))
	ts.serve(t)
	resp := ts.do(t, http.MethodGet, "/health/ready", "", nil)
	defer resp.Body.Close()
	var body readyState
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "ok" || body.check("data_dir") != "ok" ||
		body.State["nonces"] != scopeMemory || body.State["budgets"] != scopeMemory || !slices.Contains(body.PerProcess, "nonces") {
		t.Fatalf("ready %d %+v", resp.StatusCode, body)
	}
	head := ts.do(t, http.MethodHead, "/health/ready", "", nil)
	head.Body.Close()
	if head.StatusCode != http.StatusOK {
		t.Fatalf("HEAD ready: %d", head.StatusCode)
	}
	// Other methods reach the mux untouched (it refuses them).
	post := ts.do(t, http.MethodPost, "/health/ready", "", nil)
	b, _ := io.ReadAll(post.Body)
	post.Body.Close()
	if post.StatusCode < 400 || bytes.Contains(b, []byte(`"per_process"`)) {
		t.Fatalf("POST ready: %d %s", post.StatusCode, b)
	}
}

// TestProductionSharedStores: production on Redis and PostgreSQL starts
// without -single-node and without the warning, and /health/ready reports
// every item shared and no per_process list.
func TestProductionSharedStores(t *testing.T) {
	cfg := productionConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	rc, real := testenv.Redis(t)
	if real {
		cfg.RedisURL = testenv.RedisURL()
	} else {
		cfg.RedisURL = "redis://" + rc.(*redis.Client).Options().Addr + "/0"
	}
	log, buf := logBuffer()
	cfg.stdout = &syncBuffer{}
	s, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatalf("production on shared stores: %v", err)
	}
	defer s.Close(context.Background())
	if lines := warnLines(buf.String()); len(lines) != 0 {
		t.Fatalf("warned with every store shared: %q", lines)
	}
	code, body := readyBody(t, s.Handler())
	if code != http.StatusOK || body.Status != "ok" || body.check("redis") != "ok" || body.check("postgres_primary") != "ok" {
		t.Fatalf("ready %d %+v", code, body)
	}
	if len(body.PerProcess) != 0 || body.State["revocations"] != scopeRedis || body.State["a2a"] != scopePostgres || body.State["audit"] != scopePostgres {
		t.Fatalf("state %v per_process %v", body.State, body.PerProcess)
	}
}

// TestStateScopeAuditBackend: an explicit non-PostgreSQL audit backend
// beside PostgreSQL is per process and named with its fix.
func TestStateScopeAuditBackend(t *testing.T) {
	cfg := productionConfig(t)
	cfg.RedisURL, cfg.PostgresURL, cfg.AuditBackend = "redis://127.0.0.1:1/0", "postgres://127.0.0.1:1/x", "sqlite"
	err := checkStateScope(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "audit (set audit.storage_backend postgres)") || strings.Contains(err.Error(), "budgets") {
		t.Fatalf("file audit beside PostgreSQL: %v", err)
	}
	cfg.MCPUpstreams = []mcpUpstream{{Name: "a", URL: "http://127.0.0.1:1"}}
	cfg.PostgresURL, cfg.AuditBackend = "", ""
	if names := perProcessNames(stateScope(cfg)); !slices.Contains(names, "mcp_idempotency") || slices.Contains(names, "nonces") {
		t.Fatalf("per process %v", names)
	}
}
