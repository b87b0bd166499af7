package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

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
	if c.tilesDir != "" {
		mux.Handle("GET /tlog/", http.StripPrefix("/tlog/", c.tilesHandler(c.tilesDir)))
	}
}

// tilesHandler serves the file store's C2SP tlog-tiles files read-only:
// checkpoint, tile/... and, to callers that may read entries, tile/entries/...;
// nothing else in the directory (journal, lock) is reachable, directories
// are not listed, and only clean paths are served (the file server would
// otherwise clean "tile//entries/000" into an entry bundle).
func (c *core) tilesHandler(dir string) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "checkpoint" && !strings.HasPrefix(p, "tile/") || strings.HasSuffix(p, "/") || strings.Contains(p, "..") || path.Clean(p) != p {
			writeError(w, r, contracts.Errorf(contracts.CodeNotFound, "no such tile"))
			return
		}
		if strings.HasPrefix(p, "tile/entries/") && !c.mayReadEntries(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="talos-admin"`)
			writeError(w, r, contracts.Errorf(contracts.CodeAuthInvalid, "entry bundles need the audit reader credential"))
			return
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			writeError(w, r, contracts.Errorf(contracts.CodeNotFound, "no such tile"))
			return
		}
		if p == "checkpoint" {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else if strings.HasPrefix(p, "tile/entries/") && !c.auditPublic {
			// Served to auditors only: no shared cache may keep it.
			w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
			w.Header().Set("Content-Type", "application/octet-stream")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		fs.ServeHTTP(w, r)
	})
}

// handleCheckpoint answers a signed checkpoint of the current tree, from
// memory or signed once per new size; it never writes to the store.
func (c *core) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := c.currentCheckpoint(r.Context())
	if err != nil {
		writeError(w, r, err)
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
		writeError(w, r, err)
		return
	}
	size, err := queryUint(r, "tree_size")
	if err != nil {
		writeError(w, r, err)
		return
	}
	proof, err := c.log.InclusionProof(r.Context(), index, size)
	if err != nil {
		writeError(w, r, err)
		return
	}
	entry, err := c.log.Entry(r.Context(), index)
	if err != nil {
		writeError(w, r, err)
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
		writeError(w, r, err)
		return
	}
	size, err := queryUint(r, "tree_size")
	if err != nil {
		writeError(w, r, err)
		return
	}
	proof, err := c.log.ConsistencyProof(r.Context(), oldSize, size)
	if err != nil {
		writeError(w, r, err)
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
				writeError(w, r, contracts.Errorf(contracts.CodeInvalidInput, p.name+" must be RFC 3339"))
				return
			}
		}
	}
	query.PrincipalID, query.SurfaceID, query.After = q.Get("principal_id"), q.Get("surface_id"), q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxQueryLimit {
			writeError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "limit must be 1 to 1000"))
			return
		}
		query.Limit = n
	}
	page, err := c.log.Query(r.Context(), query)
	if err != nil {
		writeError(w, r, err)
		return
	}
	body := eventsBody{Events: []json.RawMessage{}, Index: []uint64{}, Next: page.Next}
	for _, e := range page.Entries {
		raw, err := json.Marshal(e.Event)
		if err != nil {
			writeError(w, r, err)
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
		writeError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "index must be an unsigned integer"))
		return
	}
	entry, err := c.log.Entry(r.Context(), index)
	if err != nil {
		writeError(w, r, err)
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
		writeError(w, r, err)
		return
	}
	end, err := queryUint(r, "end")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if end <= start || end-start > maxBundleEvents {
		writeError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "need start < end with at most 10000 events"))
		return
	}
	b, err := c.log.ExportBundle(r.Context(), start, end, audit.BundleOptions{})
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
