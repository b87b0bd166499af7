package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
)

// Kinds of admin documents.
const (
	docPrincipal = "principal"
	docRole      = "role"
	docBinding   = "binding"
	docBudget    = "budget"
)

// maxAdminFile bounds the embedded admin state file.
const maxAdminFile = 64 << 20

// An adminDoc is one document put through the admin API: a registered
// principal, an RBAC role or binding, or a budget. Doc is the JSON the
// handler accepted.
type adminDoc struct {
	Kind string          `json:"kind"`
	ID   string          `json:"id"`
	Doc  json.RawMessage `json:"doc"`
}

// adminStore persists admin documents so that they survive restarts and,
// on PostgreSQL, are shared by replicas. put is durable when it returns.
type adminStore interface {
	put(ctx context.Context, d adminDoc) error
	// del removes a document and reports whether it existed.
	del(ctx context.Context, kind, id string) (bool, error)
	get(ctx context.Context, kind, id string) (json.RawMessage, bool, error)
	all(ctx context.Context) ([]adminDoc, error)
}

// fileAdminStore keeps every document in one JSON file, rewritten
// atomically (temporary file, fsync, rename, directory fsync) on each put.
type fileAdminStore struct {
	path string
	mu   sync.Mutex // guards docs and the file
	docs map[[2]string]json.RawMessage
}

func openFileAdminStore(path string) (*fileAdminStore, error) {
	s := &fileAdminStore{path: path, docs: map[[2]string]json.RawMessage{}}
	raw, err := readLimited(path, maxAdminFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state unreadable", err)
	}
	var docs []adminDoc
	if err := json.Unmarshal(raw, &docs); err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state file is corrupt", err)
	}
	for _, d := range docs {
		s.docs[[2]string{d.Kind, d.ID}] = d.Doc
	}
	return s, nil
}

func (s *fileAdminStore) put(_ context.Context, d adminDoc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{d.Kind, d.ID}
	old, had := s.docs[key]
	s.docs[key] = d.Doc
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

func (s *fileAdminStore) del(_ context.Context, kind, id string) (bool, error) {
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

func (s *fileAdminStore) writeLocked() error {
	docs := s.sortedLocked()
	raw, err := json.Marshal(docs)
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

func (s *fileAdminStore) sortedLocked() []adminDoc {
	docs := make([]adminDoc, 0, len(s.docs))
	for k, v := range s.docs {
		docs = append(docs, adminDoc{Kind: k[0], ID: k[1], Doc: v})
	}
	sort.Slice(docs, func(i, j int) bool {
		if docs[i].Kind != docs[j].Kind {
			return docs[i].Kind < docs[j].Kind
		}
		return docs[i].ID < docs[j].ID
	})
	return docs
}

func (s *fileAdminStore) get(_ context.Context, kind, id string) (json.RawMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[[2]string{kind, id}]
	return d, ok, nil
}

func (s *fileAdminStore) all(context.Context) ([]adminDoc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked(), nil
}

// pgAdminStore keeps the documents in <prefix>admin_docs, shared by every
// replica on the same database.
type pgAdminStore struct {
	pool  *pgxpool.Pool
	table string
}

func openPGAdminStore(ctx context.Context, pool *pgxpool.Pool, prefix string) (*pgAdminStore, error) {
	s := &pgAdminStore{pool: pool, table: prefix + "admin_docs"}
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	kind text NOT NULL, id text NOT NULL, doc bytea NOT NULL, PRIMARY KEY (kind, id))`)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
	}
	return s, nil
}

func (s *pgAdminStore) put(ctx context.Context, d adminDoc) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (kind, id, doc) VALUES ($1, $2, $3)
	ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc`, d.Kind, d.ID, []byte(d.Doc))
	if err != nil {
		return contracts.Wrap(contracts.CodeInternal, "admin state not saved", err)
	}
	return nil
}

func (s *pgAdminStore) del(ctx context.Context, kind, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE kind = $1 AND id = $2`, kind, id)
	if err != nil {
		return false, contracts.Wrap(contracts.CodeInternal, "admin state not saved", err)
	}
	return tag.RowsAffected() > 0, nil
}

func (s *pgAdminStore) get(ctx context.Context, kind, id string) (json.RawMessage, bool, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM `+s.table+` WHERE kind = $1 AND id = $2`, kind, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
	}
	return doc, true, nil
}

func (s *pgAdminStore) all(ctx context.Context) ([]adminDoc, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, id, doc FROM `+s.table+` ORDER BY kind, id`)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
	}
	defer rows.Close()
	var out []adminDoc
	for rows.Next() {
		var d adminDoc
		var doc []byte
		if err := rows.Scan(&d.Kind, &d.ID, &doc); err != nil {
			return nil, contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
		}
		d.Doc = doc
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
	}
	return out, nil
}
