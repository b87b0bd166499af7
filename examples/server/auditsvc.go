package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// mountAudit mounts the audit service under one privacy rule. Checkpoints,
// hash tiles and proofs are public: they reveal hashes only, and anyone
// holding the log's verifier key (GET /v1/identity) checks the log's growth
// and the inclusion of a hash it holds. Entry bytes name principals, tools
// and costs: events, entries, evidence bundles, entry bundles
// (/tlog/tile/entries/...) and the entry_b64u of inclusion proofs go only to
// callers allowed to read audit events (the admin credential), unless the
// operator publishes the log (TALOS_AUDIT_PUBLIC).
func (c *core) mountAudit(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("GET /v1/audit/checkpoint", c.handleCheckpoint)
	mux.HandleFunc("GET /v1/audit/proofs/inclusion", c.handleInclusion)
	mux.HandleFunc("GET /v1/audit/proofs/consistency", c.handleConsistency)
	entries := admin
	if c.auditPublic {
		entries = func(h http.HandlerFunc) http.HandlerFunc { return h }
	}
	mux.HandleFunc("GET /v1/audit/events", entries(c.handleEvents))
	mux.HandleFunc("GET /v1/audit/entries/{index}", entries(c.handleEntry))
	mux.HandleFunc("GET /v1/audit/bundle", entries(c.handleBundle))
	if c.tiles != nil {
		mux.Handle("GET /tlog/", http.StripPrefix("/tlog", c.entryRule(c.tiles.Handler())))
	}
}

// entryRule serves the file store's tiles (audit/file's handler) under the
// privacy rule: entry bundles (tile/entries/...) only to callers that may
// read entries, and then Cache-Control private unless the log is public.
// The rule reads the path the handler serves (r.URL.Path), and escaped
// paths are refused, so "tile%2Fentries" cannot pass as another route. The
// handler's plain-text refusals become the contract error body.
func (c *core) entryRule(tiles http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawPath != "" {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeNotFound, "no such tile"))
			return
		}
		tw := &tileWriter{ResponseWriter: w, r: r}
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			if !c.mayReadEntries(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
				talos.WriteError(w, r, contracts.Errorf(contracts.CodeAuthInvalid, "entry bundles need the audit reader credential"))
				return
			}
			// Served to auditors only: no shared cache may keep it.
			tw.cache = "private, max-age=31536000, immutable"
			if c.auditPublic {
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
		code := contracts.CodeNotFound
		if status == http.StatusMethodNotAllowed {
			code = contracts.CodeInvalidInput
		}
		talos.WriteError(t.ResponseWriter, t.r, contracts.Errorf(code, "no such tile"))
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

// handleCheckpoint answers a signed checkpoint of the current tree, from
// memory or signed once per new size; it never writes to the store.
func (c *core) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := c.currentCheckpoint(r.Context())
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(cp.Note)
}

type proofBody struct {
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
		return 0, contracts.Errorf(contracts.CodeInvalidInput, "query parameter "+name+" must be an unsigned integer")
	}
	return v, nil
}

// handleInclusion proves that entry index is in the tree of size tree_size
// (the size of a checkpoint the client holds) and returns the leaf hash, and
// the entry itself to callers that may read entries.
func (c *core) handleInclusion(w http.ResponseWriter, r *http.Request) {
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
	proof, err := c.log.InclusionProof(r.Context(), index, size)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	entry, err := c.log.Entry(r.Context(), index)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	body := proofBody{Index: index, TreeSize: size, LeafHash: audit.LeafHash(entry).String(), Proof: hashes(proof)}
	if c.mayReadEntries(r) {
		body.EntryB64u = contracts.EncodeBase64URL(entry)
	}
	writeJSON(w, http.StatusOK, body)
}

func (c *core) handleConsistency(w http.ResponseWriter, r *http.Request) {
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
	proof, err := c.log.ConsistencyProof(r.Context(), oldSize, size)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proofBody{OldSize: oldSize, TreeSize: size, Proof: hashes(proof)})
}

type eventsBody struct {
	Events []json.RawMessage `json:"events"`
	Index  []uint64          `json:"indexes"`
	Next   string            `json:"next_cursor,omitempty"`
}

// handleEvents queries events newest first with the contract cursor:
// ?since=&until= (RFC 3339), principal_id, surface_id, cursor, limit.
func (c *core) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var query audit.Query
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &query.Since}, {"until", &query.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339, v); err != nil {
				talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, p.name+" must be RFC 3339"))
				return
			}
		}
	}
	query.PrincipalID, query.SurfaceID, query.After = q.Get("principal_id"), q.Get("surface_id"), q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxQueryLimit {
			talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "limit must be 1 to 1000"))
			return
		}
		query.Limit = n
	}
	page, err := c.log.Query(r.Context(), query)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	body := eventsBody{Events: []json.RawMessage{}, Index: []uint64{}, Next: page.Next}
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

func (c *core) handleEntry(w http.ResponseWriter, r *http.Request) {
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 63)
	if err != nil {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "index must be an unsigned integer"))
		return
	}
	entry, err := c.log.Entry(r.Context(), index)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(entry)
}

// maxBundleEvents bounds one evidence bundle export.
const maxBundleEvents = 10_000

// handleBundle exports the entries [start, end) as a contract evidence
// bundle with inclusion proofs against a freshly signed checkpoint, which
// audit.VerifyBundle checks offline with the verifier key alone.
func (c *core) handleBundle(w http.ResponseWriter, r *http.Request) {
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
	if end <= start || end-start > maxBundleEvents {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "need start < end with at most 10000 events"))
		return
	}
	b, err := c.log.ExportBundle(r.Context(), start, end, audit.BundleOptions{})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
