package admin

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// Kinds of admin documents.
const (
	KindPrincipal = "principal"
	KindRole      = "role"
	KindBinding   = "binding"
	KindBudget    = "budget"
)

// A Doc is one document put through the admin API: a registered principal,
// an RBAC role or binding, or a budget. Doc is the JSON the handler
// accepted (for a principal, the [Principal] as served).
type Doc struct {
	Kind string          `json:"kind"`
	ID   string          `json:"id"`
	Doc  json.RawMessage `json:"doc"`
}

// A Store persists admin documents so that they survive restarts and, when
// shared, are seen by every replica. Put is durable when it returns.
// Failures are *contracts.Error with code INTERNAL; they never name the
// stored documents. [FileStore] and gateway/admin/postgres implement it;
// gateway/admin/admintest is the conformance suite.
type Store interface {
	// Put stores d, replacing the document of the same kind and id.
	Put(ctx context.Context, d Doc) error
	// Delete removes a document and reports whether it existed.
	Delete(ctx context.Context, kind, id string) (bool, error)
	// Get returns a document's JSON, or false when there is none.
	Get(ctx context.Context, kind, id string) (json.RawMessage, bool, error)
	// All returns every document, ordered by kind then id.
	All(ctx context.Context) ([]Doc, error)
}

// A SharedStore is a Store that other processes write too (PostgreSQL).
// The principal [Registry] re-reads a cached registration from a shared
// store after [PrincipalCacheTTL].
type SharedStore interface {
	Store
	Shared() bool
}

// maxStateFile bounds the file store.
const maxStateFile = 64 << 20

// FileStore keeps every document in one JSON file, rewritten atomically
// (temporary file, fsync, rename, directory fsync) on each change. It is
// for one process: two processes on one file lose each other's changes.
type FileStore struct {
	path string
	mu   sync.Mutex // guards docs and the file
	docs map[[2]string]json.RawMessage
}

// OpenFile opens the file store at path (its directory must exist); a
// missing file is an empty store. A file that does not parse is refused.
func OpenFile(path string) (*FileStore, error) {
	s := &FileStore{path: path, docs: map[[2]string]json.RawMessage{}}
	raw, err := httpx.ReadFileLimited(path, maxStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state unreadable", err)
	}
	var docs []Doc
	if err := json.Unmarshal(raw, &docs); err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state file is corrupt", err)
	}
	for _, d := range docs {
		s.docs[[2]string{d.Kind, d.ID}] = d.Doc
	}
	return s, nil
}

// Put implements Store.
func (s *FileStore) Put(_ context.Context, d Doc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{d.Kind, d.ID}
	old, had := s.docs[key]
	s.docs[key] = append(json.RawMessage(nil), d.Doc...)
	if err := s.writeLocked(); err != nil {
		if had {
			s.docs[key] = old
		} else {
			delete(s.docs, key)
		}
		return contracts.Wrap(contracts.CodeInternal, "admin state not saved", err)
	}
	return nil
}

// Delete implements Store.
func (s *FileStore) Delete(_ context.Context, kind, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{kind, id}
	old, had := s.docs[key]
	if !had {
		return false, nil
	}
	delete(s.docs, key)
	if err := s.writeLocked(); err != nil {
		s.docs[key] = old
		return false, contracts.Wrap(contracts.CodeInternal, "admin state not saved", err)
	}
	return true, nil
}

func (s *FileStore) writeLocked() error {
	raw, err := json.Marshal(s.sortedLocked())
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".admin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(s.path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (s *FileStore) sortedLocked() []Doc {
	docs := make([]Doc, 0, len(s.docs))
	for k, v := range s.docs {
		docs = append(docs, Doc{Kind: k[0], ID: k[1], Doc: v})
	}
	sort.Slice(docs, func(i, j int) bool {
		if docs[i].Kind != docs[j].Kind {
			return docs[i].Kind < docs[j].Kind
		}
		return docs[i].ID < docs[j].ID
	})
	return docs
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, kind, id string) (json.RawMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[[2]string{kind, id}]
	return append(json.RawMessage(nil), d...), ok, nil
}

// All implements Store.
func (s *FileStore) All(context.Context) ([]Doc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked(), nil
}

// Path returns the file the store writes.
func (s *FileStore) Path() string { return s.path }
