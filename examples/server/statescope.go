package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// Store names reported by stateScope and /health/ready.
const (
	scopeRedis    = "redis"
	scopePostgres = "postgres"
	scopeMemory   = "memory (per process)"
	scopeFile     = "file (per process)"
)

// stateItem is one piece of server state and the store that holds it.
type stateItem struct {
	name  string // revocations, nonces, rate_limits, ...
	store string // one of the scope* constants
	// fix names the setting that moves the state to a shared store.
	fix string
}

// perProcess reports whether the state lives in this process (or its data
// directory) only: another replica does not see it.
func (i stateItem) perProcess() bool { return i.store == scopeMemory || i.store == scopeFile }

// stateScope lists, from the configuration alone, where each piece of
// state that replicas must agree on is kept: Redis (revocations, attestation
// nonces, rate limits, budget spend) and PostgreSQL (admin documents, A2A
// state, MCP idempotency keys, config versions, secrets, the audit log), or
// memory or a file of this process. It mirrors the choices of newCore,
// openAdmin, newA2AService, enableGateway, openConfigs, openSecrets and
// openAuditStore.
func stateScope(cfg Config) []stateItem {
	redisOr := func(name string) stateItem {
		if cfg.redisConfigured() {
			return stateItem{name, scopeRedis, ""}
		}
		return stateItem{name, scopeMemory, "-redis"}
	}
	pgOr := func(name, local string) stateItem {
		if cfg.PostgresURL != "" {
			return stateItem{name, scopePostgres, ""}
		}
		return stateItem{name, local, "-postgres"}
	}
	items := []stateItem{
		redisOr("revocations"),
		redisOr("nonces"),
		redisOr("rate_limits"),
		redisOr("budgets"),
		pgOr("admin", scopeFile),
		pgOr("a2a", scopeMemory),
	}
	if len(cfg.MCPUpstreams) > 0 {
		items = append(items, pgOr("mcp_idempotency", scopeMemory))
	}
	items = append(items, pgOr("config_versions", scopeFile), pgOr("secrets", scopeFile))
	audit := stateItem{"audit", scopeFile, "-postgres"}
	switch {
	case cfg.AuditBackend == "memory":
		audit = stateItem{"audit", scopeMemory, "audit.storage_backend postgres"}
	case cfg.AuditBackend == "postgres" || (cfg.AuditBackend == "" && cfg.PostgresURL != ""):
		audit = stateItem{"audit", scopePostgres, ""}
	case cfg.PostgresURL != "":
		audit.fix = "audit.storage_backend postgres"
	}
	return append(items, audit)
}

// perProcessNames returns the names of the per-process items.
func perProcessNames(items []stateItem) []string {
	var names []string
	for _, i := range items {
		if i.perProcess() {
			names = append(names, i.name)
		}
	}
	return names
}

// checkStateScope applies the start-up rule on per-process state: in
// production mode every item must be on a shared store unless -single-node
// says this is the only replica; the error names each item and the setting
// that fixes it. Otherwise, when something is per process, it logs one Warn
// line listing it (limits and replay protection then hold per process only).
func checkStateScope(cfg Config, log *slog.Logger) error {
	items := stateScope(cfg)
	local := perProcessNames(items)
	if len(local) == 0 {
		return nil
	}
	if cfg.Production && !cfg.SingleNode {
		byFix := map[string][]string{}
		var fixes []string
		for _, i := range items {
			if !i.perProcess() {
				continue
			}
			if _, ok := byFix[i.fix]; !ok {
				fixes = append(fixes, i.fix)
			}
			byFix[i.fix] = append(byFix[i.fix], i.name)
		}
		var parts []string
		for _, f := range fixes {
			parts = append(parts, strings.Join(byFix[f], ", ")+" (set "+fixHint(f)+")")
		}
		return contracts.New(contracts.CodeInvalidInput,
			"config: production mode refuses per-process state: "+strings.Join(parts, "; ")+
				"; or pass -single-node (TALOS_SINGLE_NODE) to run one replica whose limits and replay protection are per process")
	}
	log.Warn("state is per process: limits and replay protection hold for this process only, not across replicas",
		"per_process", strings.Join(local, ","), "single_node", cfg.SingleNode)
	return nil
}

// fixHint spells a setting with its environment variable.
func fixHint(f string) string {
	switch f {
	case "-redis":
		return "-redis / TALOS_REDIS_URL"
	case "-postgres":
		return "-postgres / TALOS_POSTGRES_URL"
	}
	return f
}

// withStateScope answers GET and HEAD /health/ready with the readiness
// body of next plus "state" (item → store) and, when some state is per
// process, "per_process" (the item names). Status code and the other
// fields are next's.
func (s *Server) withStateScope(next http.Handler) http.Handler {
	items := stateScope(s.cfg)
	state := make(map[string]string, len(items))
	for _, i := range items {
		state[i.name] = i.store
	}
	stateJSON, err := json.Marshal(state)
	if err != nil {
		panic("statescope: " + err.Error()) // a map of strings always encodes
	}
	var perJSON []byte
	if names := perProcessNames(items); len(names) > 0 {
		perJSON, _ = json.Marshal(names)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/ready" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		var fields map[string]json.RawMessage
		if rec.status != http.StatusMethodNotAllowed && json.Unmarshal(body, &fields) == nil && fields != nil {
			fields["state"] = stateJSON
			if perJSON != nil {
				fields["per_process"] = perJSON
			}
			if b, err := json.Marshal(fields); err == nil {
				body = append(b, '\n')
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

// bufferedResponse keeps a small response (the readiness body) in memory.
type bufferedResponse struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
