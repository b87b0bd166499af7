package auditapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// MaxBundleEvents bounds one evidence bundle export.
const MaxBundleEvents = 10_000

// Config configures a [Handler].
type Config struct {
	// Log is the audit log served. Required.
	Log *audit.Log
	// Store is the Log's store: the current size, and the tiles under
	// /tlog/. Required.
	Store audit.Store
	// Public serves entry bytes (events, entries, bundles, entry tiles,
	// entry_b64u) to anyone. False: only to requests IsReader admits.
	Public bool
	// IsReader reports whether a request may read entry bytes (an
	// auditor's credential). Nil admits nobody (unless Public).
	IsReader func(r *http.Request) bool
	// Realm is the WWW-Authenticate realm of refusals. "" means
	// "talos-audit".
	Realm string
	// Tiles serves the C2SP tiles (mounted under /tlog/ behind the entry
	// rule). Nil means the store's own handler when it has one (audit/file's
	// Store.Handler: a Handler() http.Handler method), and otherwise
	// audit.NewTileHandler(Store), so every store serves tiles.
	Tiles http.Handler
}

// Handler is the audit HTTP service. It is safe for concurrent use.
type Handler struct {
	log      *audit.Log
	store    audit.Store
	public   bool
	isReader func(*http.Request) bool
	realm    string
	tiles    http.Handler

	mu sync.Mutex // guards cp, cpOK
	cp audit.Checkpoint
	ok bool
}

// New returns the service over cfg.Log.
func New(cfg Config) (*Handler, error) {
	if cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("auditapi: Config.Log and Config.Store are required")
	}
	h := &Handler{log: cfg.Log, store: cfg.Store, public: cfg.Public, isReader: cfg.IsReader, realm: cfg.Realm, tiles: cfg.Tiles}
	if h.realm == "" {
		h.realm = "talos-audit"
	}
	if h.tiles == nil {
		if own, ok := cfg.Store.(interface{ Handler() http.Handler }); ok {
			h.tiles = own.Handler()
		} else {
			h.tiles = audit.NewTileHandler(cfg.Store)
		}
	}
	return h, nil
}

// Register mounts the routes on mux:
//
//	GET /v1/audit/checkpoint                         signed checkpoint of the current tree (text, no-store)
//	GET /v1/audit/proofs/inclusion?index=&tree_size= inclusion proof, leaf hash (+ entry_b64u to readers)
//	GET /v1/audit/proofs/consistency?old_size=&tree_size=
//	GET /v1/audit/events?since=&until=&principal_id=&surface_id=&cursor=&limit=   readers
//	GET /v1/audit/entries/{index}                    the entry's exact bytes; readers
//	GET /v1/audit/bundle?start=&end=                 evidence bundle (≤ 10000 events); readers
//	GET /tlog/checkpoint, /tlog/tile/...             C2SP tlog-tiles; tile/entries/... readers
//
// Errors are the contract error body (talos.WriteError).
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/audit/checkpoint", h.handleCheckpoint)
	mux.HandleFunc("GET /v1/audit/proofs/inclusion", h.handleInclusion)
	mux.HandleFunc("GET /v1/audit/proofs/consistency", h.handleConsistency)
	mux.HandleFunc("GET /v1/audit/events", h.readers(h.handleEvents))
	mux.HandleFunc("GET /v1/audit/entries/{index}", h.readers(h.handleEntry))
	mux.HandleFunc("GET /v1/audit/bundle", h.readers(h.handleBundle))
	mux.Handle("GET /tlog/", http.StripPrefix("/tlog", h.entryRule(h.tiles)))
}

// MayReadEntries reports whether r may read entry bytes: the log is public
// or Config.IsReader admits r.
func (h *Handler) MayReadEntries(r *http.Request) bool {
	return h.public || h.isReader != nil && h.isReader(r)
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+h.realm+`"`)
	talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "audit entries need the audit reader credential"))
}

func (h *Handler) readers(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.MayReadEntries(r) {
			h.refuse(w, r)
			return
		}
		next(w, r)
	}
}

// entryRule serves the tiles under the privacy rule: entry bundles
// (tile/entries/...) only to callers that may read entries, and then
// Cache-Control private unless the log is public. The rule reads the path
// the handler serves (r.URL.Path), and escaped paths are refused, so
// "tile%2Fentries" cannot pass as another route. The tile handler's
// plain-text refusals become the contract error body.
func (h *Handler) entryRule(tiles http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawPath != "" {
			talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such tile"))
			return
		}
		tw := &tileWriter{ResponseWriter: w, r: r}
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			if !h.MayReadEntries(r) {
				h.refuse(w, r)
				return
			}
			// Served to auditors only: no shared cache may keep it.
			tw.cache = "private, max-age=31536000, immutable"
			if h.public {
				tw.cache = "public, max-age=31536000, immutable"
			}
		}
		tiles.ServeHTTP(tw, r)
	})
}

// tileWriter sets the entry bundles' Cache-Control and turns the tile
// handler's error answers into the contract error body.
type tileWriter struct {
	http.ResponseWriter
	r       *http.Request
	cache   string
	wrote   bool
	refused bool
}

func (t *tileWriter) WriteHeader(status int) {
	if t.wrote {
		return
	}
	t.wrote = true
	if status >= 400 {
		t.refused = true
		var err error
		switch {
		case status == http.StatusMethodNotAllowed:
			err = contracts.New(contracts.CodeInvalidInput, "no such tile")
		case status >= 500:
			err = contracts.New(contracts.CodeInternal, "audit store unavailable").WithRetryable(true)
		default:
			err = contracts.New(contracts.CodeNotFound, "no such tile")
		}
		t.Header().Del("Cache-Control")
		talos.WriteError(t.ResponseWriter, t.r, err)
		return
	}
	if t.cache != "" {
		t.Header().Set("Cache-Control", t.cache)
	}
	t.ResponseWriter.WriteHeader(status)
}

func (t *tileWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.refused {
		return len(b), nil
	}
	return t.ResponseWriter.Write(b)
}

func (t *tileWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Checkpoint returns a signed checkpoint of the log's current size without
// writing to the store: served from memory for a size already signed,
// signed once per new size otherwise (audit.Log.CheckpointAt). Anonymous
// callers of GET /v1/audit/checkpoint therefore never write.
func (h *Handler) Checkpoint(ctx context.Context) (audit.Checkpoint, error) {
	size, err := h.store.Size(ctx)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	h.mu.Lock()
	cp, ok := h.cp, h.ok && h.cp.Size == size
	h.mu.Unlock()
	if ok {
		return cp, nil
	}
	cp, err = h.log.CheckpointAt(ctx, size)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	h.remember(cp)
	return cp, nil
}

func (h *Handler) remember(cp audit.Checkpoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ok || cp.Size >= h.cp.Size {
		h.cp, h.ok = cp, true
	}
}

// Publish signs and records a checkpoint of the current tree in the store
// (for audit/file: /tlog/checkpoint, after the partial tiles it covers)
// when the log grew since the last one.
func (h *Handler) Publish(ctx context.Context) error {
	cp, err := h.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	h.remember(cp)
	return nil
}

// Publisher returns a worker that publishes a checkpoint every interval
// until its context ends; a failed publication goes to onErr (nil ignores
// it) and is retried at the next tick. Publish once at start and once at
// shutdown (before the store closes) besides, so tile clients see a fresh
// tree head.
func (h *Handler) Publisher(interval time.Duration, onErr func(error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := h.Publish(ctx); err != nil && ctx.Err() == nil && onErr != nil {
					onErr(err)
				}
			}
		}
	}
}

func (h *Handler) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := h.Checkpoint(r.Context())
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(cp.Note)
}

// ProofBody is the JSON body of the proof routes.
type ProofBody struct {
	Index     uint64   `json:"index,omitempty"`
	OldSize   uint64   `json:"old_size,omitempty"`
	TreeSize  uint64   `json:"tree_size"`
	LeafHash  string   `json:"leaf_hash,omitempty"`
	Proof     []string `json:"proof"`
	EntryB64u string   `json:"entry_b64u,omitempty"`
}

func hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// queryUint reads a required unsigned query parameter.
func queryUint(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 63)
	if err != nil {
		return 0, contracts.New(contracts.CodeInvalidInput, "query parameter "+name+" must be an unsigned integer")
	}
	return v, nil
}

// handleInclusion proves that entry index is in the tree of size tree_size
// (the size of a checkpoint the client holds) and returns the leaf hash, and
// the entry itself to callers that may read entries.
func (h *Handler) handleInclusion(w http.ResponseWriter, r *http.Request) {
	index, err := queryUint(r, "index")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	size, err := queryUint(r, "tree_size")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	proof, err := h.log.InclusionProof(r.Context(), index, size)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	entry, err := h.log.Entry(r.Context(), index)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	body := ProofBody{Index: index, TreeSize: size, LeafHash: audit.LeafHash(entry).String(), Proof: hashes(proof)}
	if h.MayReadEntries(r) {
		body.EntryB64u = contracts.EncodeBase64URL(entry)
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) handleConsistency(w http.ResponseWriter, r *http.Request) {
	oldSize, err := queryUint(r, "old_size")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	size, err := queryUint(r, "tree_size")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	proof, err := h.log.ConsistencyProof(r.Context(), oldSize, size)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ProofBody{OldSize: oldSize, TreeSize: size, Proof: hashes(proof)})
}

// EventsBody is the JSON body of GET /v1/audit/events.
type EventsBody struct {
	Events []json.RawMessage `json:"events"`
	Index  []uint64          `json:"indexes"`
	Next   string            `json:"next_cursor,omitempty"`
}

// handleEvents queries events newest first with the contract cursor.
func (h *Handler) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var query audit.Query
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &query.Since}, {"until", &query.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339, v); err != nil {
				talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, p.name+" must be RFC 3339"))
				return
			}
		}
	}
	query.PrincipalID, query.SurfaceID, query.After = q.Get("principal_id"), q.Get("surface_id"), q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxQueryLimit {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 1000"))
			return
		}
		query.Limit = n
	}
	page, err := h.log.Query(r.Context(), query)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	body := EventsBody{Events: []json.RawMessage{}, Index: []uint64{}, Next: page.Next}
	for _, e := range page.Entries {
		raw, err := json.Marshal(e.Event)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		body.Events = append(body.Events, raw)
		body.Index = append(body.Index, e.Index)
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) handleEntry(w http.ResponseWriter, r *http.Request) {
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 63)
	if err != nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "index must be an unsigned integer"))
		return
	}
	entry, err := h.log.Entry(r.Context(), index)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(entry)
}

// handleBundle exports the entries [start, end) as a contract evidence
// bundle with inclusion proofs against a freshly signed checkpoint, which
// audit.VerifyBundle checks offline with the verifier key alone.
func (h *Handler) handleBundle(w http.ResponseWriter, r *http.Request) {
	start, err := queryUint(r, "start")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	end, err := queryUint(r, "end")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if end <= start || end-start > MaxBundleEvents {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "need start < end with at most 10000 events"))
		return
	}
	b, err := h.log.ExportBundle(r.Context(), start, end, audit.BundleOptions{})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
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
