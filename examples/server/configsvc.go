package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/pgsplit"
)

// A ConfigChange describes one new version of a config document. It is
// handed to ConfigService.OnChange before the version becomes visible.
type ConfigChange struct {
	Kind           string    `json:"kind"`
	Name           string    `json:"name"`
	Version        int64     `json:"version"`
	Digest         string    `json:"digest"`                    // hex SHA-256 of the JCS (RFC 8785) document
	PreviousDigest string    `json:"previous_digest,omitempty"` // "" for version 1
	Principal      string    `json:"principal,omitempty"`
	Time           time.Time `json:"time"`
}

// ConfigVersion is one stored version of a document.
type ConfigVersion struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int64           `json:"version"`
	Digest    string          `json:"digest"`
	CreatedAt time.Time       `json:"created_at"`
	Document  json.RawMessage `json:"document,omitempty"` // canonical JSON
}

// A configKind is a document family: its contract schema (validated with
// contracts.Validate when the library embeds it) and a strict typed check.
type configKind struct {
	schema string
	check  func(doc []byte, name string) error
}

// ConfigService stores budget and policy documents, versioned: every PUT of
// a changed document adds a version carrying the SHA-256 of its canonical
// JSON. It is safe for concurrent use.
type ConfigService struct {
	store configStore
	// OnChange, when set, is called for every new version inside the
	// store's commit: if it returns an error the version is not stored and
	// the PUT fails (500, retryable). The lead wires it to the audit log,
	// so no change exists without its audit event. It runs while the
	// document's write lock is held (a mutex in memory, a transaction with
	// an advisory lock on PostgreSQL): it must not call back into the
	// ConfigService. Set it before serving.
	OnChange func(ctx context.Context, c ConfigChange) error
	now      func() time.Time

	kindsMu sync.RWMutex // guards kinds
	kinds   map[string]configKind
}

var configNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// newConfigService stores the versions in PostgreSQL when db is set, and
// otherwise in dataDir/config-versions.jsonl ("" keeps them in memory only).
func newConfigService(ctx context.Context, db *pgsplit.DB, prefix, dataDir string) (*ConfigService, error) {
	var store configStore = newMemConfigStore()
	switch {
	case db != nil:
		ps, err := openPGConfigStore(ctx, db, prefix)
		if err != nil {
			return nil, err
		}
		store = ps
	case dataDir != "":
		fs, err := openFileConfigStore(filepath.Join(dataDir, configFileName))
		if err != nil {
			return nil, err
		}
		store = fs
	}
	cs := &ConfigService{store: store, now: time.Now, kinds: map[string]configKind{}}
	cs.RegisterKind("budget", "ai_gateway/budget", checkBudgetDoc)
	cs.RegisterKind("policy", "ai_gateway/routing_policy", checkPolicyDoc)
	return cs, nil
}

// RegisterKind adds a document kind. schema is a contracts.Validate name,
// used when the library embeds it; check is always applied.
func (cs *ConfigService) RegisterKind(kind, schema string, check func(doc []byte, name string) error) {
	if !slices.Contains(contracts.SchemaNames(), schema) {
		schema = ""
	}
	cs.kindsMu.Lock()
	cs.kinds[kind] = configKind{schema: schema, check: check}
	cs.kindsMu.Unlock()
}

func (cs *ConfigService) kind(name string) (configKind, bool) {
	cs.kindsMu.RLock()
	defer cs.kindsMu.RUnlock()
	k, ok := cs.kinds[name]
	return k, ok
}

// mount registers the config routes, each behind auth.
func (cs *ConfigService) mount(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("PUT /v1/config/{kind}/{name}", auth(cs.handlePut))
	mux.HandleFunc("GET /v1/config/{kind}/{name}", auth(cs.handleGet))
	mux.HandleFunc("GET /v1/config/{kind}/{name}/versions", auth(cs.handleVersions))
	mux.HandleFunc("GET /v1/config/{kind}/{name}/versions/{n}", auth(cs.handleVersion))
}

func (cs *ConfigService) target(r *http.Request) (configKind, string, string, error) {
	kindName, name := r.PathValue("kind"), r.PathValue("name")
	k, ok := cs.kind(kindName)
	if !ok {
		return k, "", "", contracts.Errorf(contracts.CodeNotFound, "unknown config kind")
	}
	if len(name) > maxConfigNameLen || !configNameRE.MatchString(name) {
		return k, "", "", contracts.Errorf(contracts.CodeInvalidInput, "config name must match [a-z0-9][a-z0-9._-]* and be at most 64 bytes")
	}
	return k, kindName, name, nil
}

// Put validates and stores doc as the next version of kind/name. An
// unchanged document (same digest as the latest version) stores nothing and
// returns the latest version with changed=false. Errors are *contracts.Error:
// TALOS_INVALID_INPUT (not JSON under the library's rules), SCHEMA_VALIDATION_ERROR
// (schema or typed check), NOT_FOUND (unknown kind), INTERNAL (store or
// audit hook failed; nothing stored).
func (cs *ConfigService) Put(ctx context.Context, kindName, name string, doc []byte) (ConfigVersion, bool, error) {
	k, ok := cs.kind(kindName)
	if !ok {
		return ConfigVersion{}, false, contracts.Errorf(contracts.CodeNotFound, "unknown config kind")
	}
	canon, err := contracts.Canonicalize(doc)
	if err != nil {
		return ConfigVersion{}, false, err
	}
	if k.schema != "" {
		if err := contracts.Validate(k.schema, doc); err != nil {
			return ConfigVersion{}, false, err
		}
	}
	if err := k.check(doc, name); err != nil {
		return ConfigVersion{}, false, err
	}
	sum := sha256.Sum256(canon)
	digest := hex.EncodeToString(sum[:])
	at := cs.now().UTC().Truncate(time.Microsecond)
	principal := principalFrom(ctx)
	v, changed, err := cs.store.put(ctx, kindName, name, digest, canon, at, func(ctx context.Context, v ConfigVersion, prev string) error {
		if cs.OnChange == nil {
			return nil
		}
		c := ConfigChange{Kind: kindName, Name: name, Version: v.Version, Digest: v.Digest,
			PreviousDigest: prev, Principal: principal, Time: v.CreatedAt}
		if err := cs.OnChange(ctx, c); err != nil {
			return &hookError{err}
		}
		return nil
	})
	var he *hookError
	switch {
	case errors.As(err, &he):
		return ConfigVersion{}, false, contracts.Wrap(contracts.CodeInternal, "the change could not be audited; it was not applied", he.err).WithRetryable(true)
	case errors.Is(err, errConfigFull):
		return ConfigVersion{}, false, contracts.Errorf(contracts.CodeInvalidInput, "too many versions of this document")
	case err != nil:
		return ConfigVersion{}, false, storeErr(err)
	}
	return v, changed, nil
}

type hookError struct{ err error }

func (e *hookError) Error() string { return "audit hook: " + e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

func storeErr(err error) error {
	if errors.Is(err, errConfigNotFound) {
		return contracts.Errorf(contracts.CodeNotFound, "no such config document or version")
	}
	return contracts.Wrap(contracts.CodeInternal, "config store unavailable", err).WithRetryable(true)
}

type putResponse struct {
	ConfigVersion
	Changed bool `json:"changed"`
}

func (cs *ConfigService) handlePut(w http.ResponseWriter, r *http.Request) {
	_, kind, name, err := cs.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONContentType(ct) {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "Content-Type must be application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "body exceeds "+strconv.Itoa(maxConfigBody)+" bytes"))
			return
		}
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "reading the body failed"))
		return
	}
	v, changed, err := cs.Put(r.Context(), kind, name, body)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(v.Digest))
	status := http.StatusOK
	if changed {
		status = http.StatusCreated
		w.Header().Set("Location", fmt.Sprintf("/v1/config/%s/%s/versions/%d", kind, name, v.Version))
	}
	v.Document = nil
	writeJSON(w, status, putResponse{ConfigVersion: v, Changed: changed})
}

func (cs *ConfigService) handleGet(w http.ResponseWriter, r *http.Request) {
	_, kind, name, err := cs.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	v, err := cs.store.latest(r.Context(), kind, name)
	if err != nil {
		talos.WriteError(w, r, storeErr(err))
		return
	}
	w.Header().Set("ETag", etag(v.Digest))
	writeJSON(w, http.StatusOK, v)
}

func (cs *ConfigService) handleVersion(w http.ResponseWriter, r *http.Request) {
	_, kind, name, err := cs.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != r.PathValue("n") {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "version must be a positive integer"))
		return
	}
	v, err := cs.store.version(r.Context(), kind, name, n)
	if err != nil {
		talos.WriteError(w, r, storeErr(err))
		return
	}
	w.Header().Set("ETag", etag(v.Digest))
	writeJSON(w, http.StatusOK, v)
}

type versionsResponse struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Versions  []ConfigVersion `json:"versions"`
	NextAfter int64           `json:"next_after,omitempty"` // pass as ?after= for the next page
}

func (cs *ConfigService) handleVersions(w http.ResponseWriter, r *http.Request) {
	_, kind, name, err := cs.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, after := defaultVersionsPage, int64(0)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxVersionsPage {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "limit must be 1 to 1000"))
			return
		}
		limit = n
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "after must be a non-negative integer"))
			return
		}
		after = n
	}
	vs, err := cs.store.versions(r.Context(), kind, name, after, limit+1)
	if err != nil {
		talos.WriteError(w, r, storeErr(err))
		return
	}
	if len(vs) == 0 && after == 0 {
		talos.WriteError(w, r, storeErr(errConfigNotFound))
		return
	}
	resp := versionsResponse{Kind: kind, Name: name, Versions: vs}
	if len(vs) > limit {
		resp.Versions = vs[:limit]
		resp.NextAfter = vs[limit-1].Version
	}
	if resp.Versions == nil {
		resp.Versions = []ConfigVersion{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func etag(digest string) string { return `"sha256:` + digest + `"` }

func isJSONContentType(ct string) bool {
	mt, _, _ := bytes.Cut([]byte(ct), []byte(";"))
	return string(bytes.TrimSpace(mt)) == "application/json"
}

// strictDecode decodes doc into v rejecting unknown and mis-cased fields,
// objects with two keys equal under case folding and trailing data
// (contracts.UnmarshalFieldsKnown).
func strictDecode(doc []byte, v any) error {
	if err := contracts.UnmarshalFieldsKnown(doc, v); err != nil {
		return contracts.Wrap(contracts.CodeSchemaValidationError, "document does not match its schema: "+err.Error(), err)
	}
	return nil
}

func schemaErr(msg string) error { return contracts.Errorf(contracts.CodeSchemaValidationError, msg) }

// budgetDoc is contracts ai_gateway/budget.
type budgetDoc struct {
	ID        string   `json:"id"`
	ScopeType string   `json:"scope_type"`
	ScopeID   string   `json:"scope_id"`
	Period    string   `json:"period,omitempty"`
	MaxUSD    *float64 `json:"max_usd,omitempty"`
	UsedUSD   *float64 `json:"used_usd,omitempty"`
	ResetAt   string   `json:"reset_at,omitempty"`
}

func checkBudgetDoc(doc []byte, name string) error {
	var b budgetDoc
	if err := strictDecode(doc, &b); err != nil {
		return err
	}
	switch {
	case b.ID != name:
		return schemaErr("budget id must equal the document name")
	case b.ScopeType != "team" && b.ScopeType != "key":
		return schemaErr("budget scope_type must be team or key")
	case b.ScopeID == "":
		return schemaErr("budget scope_id is required")
	case b.Period != "" && b.Period != "daily" && b.Period != "monthly":
		return schemaErr("budget period must be daily or monthly")
	case b.MaxUSD != nil && *b.MaxUSD < 0, b.UsedUSD != nil && *b.UsedUSD < 0:
		return schemaErr("budget amounts must be non-negative")
	}
	if b.ResetAt != "" {
		if _, err := time.Parse(time.RFC3339, b.ResetAt); err != nil {
			return schemaErr("budget reset_at must be an RFC 3339 date-time")
		}
	}
	return nil
}

// policyDoc is contracts ai_gateway/routing_policy (unknown fields rejected,
// stricter than the contract schema).
type policyDoc struct {
	ID         string `json:"id"`
	Version    *int64 `json:"version"`
	Strategy   string `json:"strategy"`
	TimeoutMS  *int64 `json:"timeout_ms,omitempty"`
	RetriesDoc *struct {
		MaxAttempts       *int64   `json:"max_attempts,omitempty"`
		BackoffMS         *int64   `json:"backoff_ms,omitempty"`
		BackoffMultiplier *float64 `json:"backoff_multiplier,omitempty"`
	} `json:"retries,omitempty"`
	Cooldown *struct {
		FailureThreshold *int64 `json:"failure_threshold,omitempty"`
		WindowSeconds    *int64 `json:"window_seconds,omitempty"`
		CooldownSeconds  *int64 `json:"cooldown_seconds,omitempty"`
	} `json:"cooldown,omitempty"`
}

func checkPolicyDoc(doc []byte, name string) error {
	var p policyDoc
	if err := strictDecode(doc, &p); err != nil {
		return err
	}
	atLeast := func(v *int64, min int64) bool { return v == nil || *v >= min }
	switch {
	case p.ID != name:
		return schemaErr("policy id must equal the document name")
	case p.Version == nil || *p.Version < 1:
		return schemaErr("policy version must be an integer >= 1")
	case p.Strategy != "weighted_hash" && p.Strategy != "round_robin" && p.Strategy != "least_latency":
		return schemaErr("policy strategy must be weighted_hash, round_robin or least_latency")
	case !atLeast(p.TimeoutMS, 100):
		return schemaErr("policy timeout_ms must be >= 100")
	}
	if r := p.RetriesDoc; r != nil {
		if !atLeast(r.MaxAttempts, 0) || !atLeast(r.BackoffMS, 0) || (r.BackoffMultiplier != nil && *r.BackoffMultiplier < 1) {
			return schemaErr("policy retries out of range")
		}
	}
	if c := p.Cooldown; c != nil {
		if !atLeast(c.FailureThreshold, 1) || !atLeast(c.WindowSeconds, 1) || !atLeast(c.CooldownSeconds, 1) {
			return schemaErr("policy cooldown values must be >= 1")
		}
	}
	return nil
}
