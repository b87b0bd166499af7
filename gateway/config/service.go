package config

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
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
)

// A Change describes one new version of a document. It is handed to
// Config.OnChange inside the store's write, before the version is visible.
type Change struct {
	Kind           string    `json:"kind"`
	Name           string    `json:"name"`
	Version        int64     `json:"version"`
	Digest         string    `json:"digest"`                    // hex SHA-256 of the JCS (RFC 8785) document
	PreviousDigest string    `json:"previous_digest,omitempty"` // "" for version 1
	Principal      string    `json:"principal,omitempty"`       // Config.Principal of the request
	Time           time.Time `json:"time"`
}

// A Kind is a document family: its contract schema and a strict typed check.
type Kind struct {
	// Name is the {kind} path segment ("budget").
	Name string
	// Schema is a contracts.Validate schema name ("ai_gateway/budget"),
	// applied when the library embeds it; "" applies none.
	Schema string
	// Check is the typed check of a document named name, always applied;
	// it returns a *contracts.Error (SCHEMA_VALIDATION_ERROR). Required.
	Check func(doc []byte, name string) error
}

// DefaultKinds returns the contract's documents: "budget"
// (ai_gateway/budget, [CheckBudget]) and "policy" (ai_gateway/routing_policy,
// [CheckPolicy]).
func DefaultKinds() []Kind {
	return []Kind{
		{Name: "budget", Schema: "ai_gateway/budget", Check: CheckBudget},
		{Name: "policy", Schema: "ai_gateway/routing_policy", Check: CheckPolicy},
	}
}

// Config configures a [Service].
type Config struct {
	// Store holds the versions. Required.
	Store Store
	// Kinds are the document families served. Nil means DefaultKinds.
	Kinds []Kind
	// OnChange, when set, is called for every new version inside the
	// store's write: if it returns an error the version is not stored and
	// the Put fails (INTERNAL, retryable). Wire it to the audit log
	// ([AuditHook]) so that no change exists without its audit event. It
	// runs while the document's writers are serialized (a mutex in memory,
	// a transaction with an advisory lock on PostgreSQL): it must not call
	// back into the Service.
	OnChange func(ctx context.Context, c Change) error
	// Principal names who makes a request, from its context (recorded in
	// Change.Principal). Nil records "".
	Principal func(ctx context.Context) string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Service stores versioned, schema-checked config documents: every Put of a
// changed document adds a version carrying the SHA-256 of its canonical
// JSON, and an unchanged document adds nothing. It is safe for concurrent
// use.
type Service struct {
	store     Store
	onChange  func(ctx context.Context, c Change) error
	principal func(ctx context.Context) string
	now       func() time.Time

	kindsMu sync.RWMutex // guards kinds
	kinds   map[string]Kind
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// New returns a Service over cfg.Store.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("config: Config.Store is required")
	}
	s := &Service{store: cfg.Store, onChange: cfg.OnChange, principal: cfg.Principal, now: cfg.Now, kinds: map[string]Kind{}}
	if s.now == nil {
		s.now = time.Now
	}
	kinds := cfg.Kinds
	if kinds == nil {
		kinds = DefaultKinds()
	}
	for _, k := range kinds {
		if err := s.RegisterKind(k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// RegisterKind adds or replaces a document kind. A kind needs a name
// matching [a-z0-9][a-z0-9._-]* and a Check.
func (s *Service) RegisterKind(k Kind) error {
	if !validName(k.Name) || k.Check == nil {
		return fmt.Errorf("config: kind %q needs a lowercase name and a Check", k.Name)
	}
	if !slices.Contains(contracts.SchemaNames(), k.Schema) {
		k.Schema = ""
	}
	s.kindsMu.Lock()
	s.kinds[k.Name] = k
	s.kindsMu.Unlock()
	return nil
}

func validName(name string) bool { return len(name) <= MaxNameLen && nameRE.MatchString(name) }

func (s *Service) kind(name string) (Kind, bool) {
	s.kindsMu.RLock()
	defer s.kindsMu.RUnlock()
	k, ok := s.kinds[name]
	return k, ok
}

// Put validates and stores doc as the next version of kind/name. An
// unchanged document (same digest as the latest version) stores nothing and
// returns the latest version with changed=false. Errors are *contracts.Error:
// TALOS_INVALID_INPUT (not JSON under the library's rules, bad name, too many
// versions), SCHEMA_VALIDATION_ERROR (schema or typed check), NOT_FOUND
// (unknown kind), INTERNAL (store or OnChange failed; nothing stored).
func (s *Service) Put(ctx context.Context, kindName, name string, doc []byte) (Version, bool, error) {
	k, ok := s.kind(kindName)
	if !ok {
		return Version{}, false, contracts.New(contracts.CodeNotFound, "unknown config kind")
	}
	if !validName(name) {
		return Version{}, false, errBadName
	}
	canon, err := contracts.Canonicalize(doc)
	if err != nil {
		return Version{}, false, err
	}
	if k.Schema != "" {
		if err := contracts.Validate(k.Schema, doc); err != nil {
			return Version{}, false, err
		}
	}
	if err := k.Check(doc, name); err != nil {
		return Version{}, false, err
	}
	sum := sha256.Sum256(canon)
	digest := hex.EncodeToString(sum[:])
	at := s.now().UTC().Truncate(time.Microsecond)
	principal := ""
	if s.principal != nil {
		principal = s.principal(ctx)
	}
	v, changed, err := s.store.Put(ctx, kindName, name, digest, canon, at, func(ctx context.Context, v Version, prev string) error {
		if s.onChange == nil {
			return nil
		}
		c := Change{Kind: kindName, Name: name, Version: v.Version, Digest: v.Digest,
			PreviousDigest: prev, Principal: principal, Time: v.CreatedAt}
		if err := s.onChange(ctx, c); err != nil {
			return &hookError{err}
		}
		return nil
	})
	var he *hookError
	switch {
	case errors.As(err, &he):
		return Version{}, false, contracts.Wrap(contracts.CodeInternal, "the change could not be audited; it was not applied", he.err).WithRetryable(true)
	case errors.Is(err, ErrFull):
		return Version{}, false, contracts.New(contracts.CodeInvalidInput, "too many versions of this document")
	case err != nil:
		return Version{}, false, storeErr(err)
	}
	return v, changed, nil
}

// Latest returns the newest version of kind/name with its document
// (NOT_FOUND when there is none, INTERNAL when the store fails).
func (s *Service) Latest(ctx context.Context, kind, name string) (Version, error) {
	v, err := s.store.Latest(ctx, kind, name)
	return v, storeErr(err)
}

// Version returns version n of kind/name with its document.
func (s *Service) Version(ctx context.Context, kind, name string, n int64) (Version, error) {
	v, err := s.store.Version(ctx, kind, name, n)
	return v, storeErr(err)
}

// Versions returns up to limit (1 to MaxVersionsPage+1, so that a caller can
// see whether another page follows) versions after version `after`, oldest
// first, without documents.
func (s *Service) Versions(ctx context.Context, kind, name string, after int64, limit int) ([]Version, error) {
	if limit < 1 || limit > MaxVersionsPage+1 || after < 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 1000 and after non-negative")
	}
	vs, err := s.store.Versions(ctx, kind, name, after, limit)
	return vs, storeErr(err)
}

var errBadName = contracts.New(contracts.CodeInvalidInput, "config name must match [a-z0-9][a-z0-9._-]* and be at most 64 bytes")

type hookError struct{ err error }

func (e *hookError) Error() string { return "audit hook: " + e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return contracts.New(contracts.CodeNotFound, "no such config document or version")
	}
	return contracts.Wrap(contracts.CodeInternal, "config store unavailable", err).WithRetryable(true)
}

// Register mounts the routes on mux, each behind auth (required: it
// authenticates the caller and may record it in the request context for
// Config.Principal):
//
//	GET  /v1/config                            documents (latest version, digest, updated_at), ?limit= (1–500, 100) &cursor=
//	PUT  /v1/config/{kind}/{name}              new version (201, Location) or unchanged (200); ETag
//	GET  /v1/config/{kind}/{name}              latest version with its document; ETag
//	GET  /v1/config/{kind}/{name}/versions     version list, ?limit= (1–1000, 100) &after=
//	GET  /v1/config/{kind}/{name}/versions/{n} one version with its document; ETag
//
// Errors are the contract error body (talos.WriteError).
func (s *Service) Register(mux *http.ServeMux, auth func(http.HandlerFunc) http.HandlerFunc) {
	if auth == nil {
		panic("config: Register needs an auth wrapper")
	}
	mux.HandleFunc("GET /v1/config", auth(s.handleList))
	mux.HandleFunc("PUT /v1/config/{kind}/{name}", auth(s.handlePut))
	mux.HandleFunc("GET /v1/config/{kind}/{name}", auth(s.handleGet))
	mux.HandleFunc("GET /v1/config/{kind}/{name}/versions", auth(s.handleVersions))
	mux.HandleFunc("GET /v1/config/{kind}/{name}/versions/{n}", auth(s.handleVersion))
}

func (s *Service) target(r *http.Request) (string, string, error) {
	kindName, name := r.PathValue("kind"), r.PathValue("name")
	if _, ok := s.kind(kindName); !ok {
		return "", "", contracts.New(contracts.CodeNotFound, "unknown config kind")
	}
	if !validName(name) {
		return "", "", errBadName
	}
	return kindName, name, nil
}

// PutResponse is the body of a PUT: the version without its document.
type PutResponse struct {
	Version
	Changed bool `json:"changed"`
}

func (s *Service) handlePut(w http.ResponseWriter, r *http.Request) {
	kind, name, err := s.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONContentType(ct) {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "Content-Type must be application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "body exceeds "+strconv.Itoa(MaxBody)+" bytes"))
			return
		}
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "reading the body failed"))
		return
	}
	v, changed, err := s.Put(r.Context(), kind, name, body)
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
	writeJSON(w, status, PutResponse{Version: v, Changed: changed})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	kind, name, err := s.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	v, err := s.Latest(r.Context(), kind, name)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(v.Digest))
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) handleVersion(w http.ResponseWriter, r *http.Request) {
	kind, name, err := s.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != r.PathValue("n") {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "version must be a positive integer"))
		return
	}
	v, err := s.Version(r.Context(), kind, name, n)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(v.Digest))
	writeJSON(w, http.StatusOK, v)
}

// VersionsResponse is the body of GET .../versions.
type VersionsResponse struct {
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Versions  []Version `json:"versions"`
	NextAfter int64     `json:"next_after,omitempty"` // pass as ?after= for the next page
}

func (s *Service) handleVersions(w http.ResponseWriter, r *http.Request) {
	kind, name, err := s.target(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, after := DefaultVersionsPage, int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxVersionsPage {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 1000"))
			return
		}
		limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "after must be a non-negative integer"))
			return
		}
		after = n
	}
	vs, err := s.Versions(r.Context(), kind, name, after, limit+1)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if len(vs) == 0 && after == 0 {
		talos.WriteError(w, r, storeErr(ErrNotFound))
		return
	}
	resp := VersionsResponse{Kind: kind, Name: name, Versions: vs}
	if len(vs) > limit {
		resp.Versions = vs[:limit]
		resp.NextAfter = vs[limit-1].Version
	}
	if resp.Versions == nil {
		resp.Versions = []Version{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func etag(digest string) string { return `"sha256:` + digest + `"` }

func isJSONContentType(ct string) bool {
	mt, _, _ := bytes.Cut([]byte(ct), []byte(";"))
	return string(bytes.TrimSpace(mt)) == "application/json"
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL","message":"response encoding failed","retryable":false}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
