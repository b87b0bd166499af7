package config

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
)

// Document is one stored document in a list: its latest version, without
// the document itself.
type Document struct {
	Kind          string    `json:"kind"`
	Name          string    `json:"name"`
	LatestVersion int64     `json:"latest_version"`
	Digest        string    `json:"digest"` // the latest version's
	UpdatedAt     time.Time `json:"updated_at"`
}

// A Lister is a [Store] that lists its documents: up to limit, sorted by
// (kind, name), after the document (afterKind, afterName) ("", "": from
// the start). MemStore, FileStore and config/postgres.Store are Listers.
type Lister interface {
	List(ctx context.Context, afterKind, afterName string, limit int) ([]Document, error)
}

var (
	_ Lister = (*MemStore)(nil)
	_ Lister = (*FileStore)(nil)
)

// List implements [Lister].
func (m *MemStore) List(_ context.Context, afterKind, afterName string, limit int) ([]Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	after := memKey(afterKind, afterName)
	keys := make([]string, 0, len(m.docs))
	for k, vs := range m.docs {
		if len(vs) > 0 && (afterKind == "" && afterName == "" || k > after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // kind, then name: memKey joins them with NUL
	out := []Document{}
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		v := m.docs[k][len(m.docs[k])-1]
		out = append(out, Document{Kind: v.Kind, Name: v.Name, LatestVersion: v.Version, Digest: v.Digest, UpdatedAt: v.CreatedAt})
	}
	return out, nil
}

// List implements [Lister].
func (s *FileStore) List(ctx context.Context, afterKind, afterName string, limit int) ([]Document, error) {
	return s.mem.List(ctx, afterKind, afterName, limit)
}

// Limits of GET /v1/config.
const (
	DefaultListPage = 100
	MaxListPage     = 500
)

// List returns up to limit (1..MaxListPage) documents after (afterKind,
// afterName), sorted by kind and name. A store that is not a [Lister]
// answers INTERNAL.
func (s *Service) List(ctx context.Context, afterKind, afterName string, limit int) ([]Document, error) {
	if limit < 1 || limit > MaxListPage+1 {
		return nil, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 500")
	}
	l, ok := s.store.(Lister)
	if !ok {
		return nil, contracts.New(contracts.CodeInternal, "config store cannot list documents")
	}
	ds, err := l.List(ctx, afterKind, afterName, limit)
	return ds, storeErr(err)
}

// ListResponse is the body of GET /v1/config.
type ListResponse struct {
	Items      []Document `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// listCursor is the opaque cursor of the document (kind, name).
func listCursor(kind, name string) string {
	return contracts.EncodeBase64URL([]byte(kind + "\n" + name))
}

// parseListCursor decodes a cursor of listCursor strictly.
func parseListCursor(c string) (kind, name string, err error) {
	bad := contracts.New(contracts.CodeInvalidInput, "cursor is not a config list cursor")
	if len(c) > 4*(MaxNameLen*2+2)/3+4 {
		return "", "", bad
	}
	raw, err := contracts.DecodeBase64URL(c)
	if err != nil {
		return "", "", bad
	}
	kind, name, ok := strings.Cut(string(raw), "\n")
	if !ok || !validName(kind) || !validName(name) {
		return "", "", bad
	}
	return kind, name, nil
}

// handleList answers GET /v1/config?limit=&cursor=.
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, vs := range q {
		if (k != "limit" && k != "cursor") || len(vs) != 1 {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "query parameters are one limit and one cursor"))
			return
		}
	}
	limit := DefaultListPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListPage {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 500"))
			return
		}
		limit = n
	}
	var kind, name string
	if c := q.Get("cursor"); c != "" {
		var err error
		if kind, name, err = parseListCursor(c); err != nil {
			talos.WriteError(w, r, err)
			return
		}
	}
	ds, err := s.List(r.Context(), kind, name, limit+1)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	resp := ListResponse{Items: ds}
	if len(ds) > limit {
		resp.Items = ds[:limit]
		last := ds[limit-1]
		resp.NextCursor = listCursor(last.Kind, last.Name)
	}
	writeJSON(w, http.StatusOK, resp)
}
