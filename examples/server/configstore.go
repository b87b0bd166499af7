package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/examples/server/internal/pgsplit"
)

var (
	errConfigNotFound = errors.New("config: not found")
	errConfigFull     = errors.New("config: too many versions")
)

// configStore persists config versions. Implementations are safe for
// concurrent use.
type configStore interface {
	// put stores doc (canonical, with its digest) as version latest+1,
	// unless the latest version has the same digest: then it returns the
	// latest and false. commit runs inside the write with the new version
	// and the previous digest ("" for version 1): if it fails, nothing is
	// stored and its error is returned. More than maxConfigVersions
	// versions is errConfigFull.
	put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time,
		commit func(ctx context.Context, v ConfigVersion, prevDigest string) error) (ConfigVersion, bool, error)
	// latest returns the newest version with its document, or errConfigNotFound.
	latest(ctx context.Context, kind, name string) (ConfigVersion, error)
	// version returns version n with its document, or errConfigNotFound.
	version(ctx context.Context, kind, name string, n int64) (ConfigVersion, error)
	// versions returns up to limit versions after version `after`, oldest
	// first, without documents.
	versions(ctx context.Context, kind, name string, after int64, limit int) ([]ConfigVersion, error)
}

// memConfigStore keeps versions in memory (the embedded default: they do not
// survive a restart).
type memConfigStore struct {
	mu   sync.Mutex // guards docs; held across commit so versions stay ordered
	docs map[string][]ConfigVersion
}

func newMemConfigStore() *memConfigStore {
	return &memConfigStore{docs: map[string][]ConfigVersion{}}
}

func memKey(kind, name string) string { return kind + "\x00" + name }

func (m *memConfigStore) put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time,
	commit func(context.Context, ConfigVersion, string) error) (ConfigVersion, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(kind, name)
	vs := m.docs[k]
	prev := ""
	if len(vs) > 0 {
		if last := vs[len(vs)-1]; last.Digest == digest {
			return last, false, nil
		}
		prev = vs[len(vs)-1].Digest
	}
	if len(vs) >= maxConfigVersions {
		return ConfigVersion{}, false, errConfigFull
	}
	v := ConfigVersion{Kind: kind, Name: name, Version: int64(len(vs)) + 1, Digest: digest, CreatedAt: at, Document: doc}
	if err := commit(ctx, v, prev); err != nil {
		return ConfigVersion{}, false, err
	}
	m.docs[k] = append(vs, v)
	return v, true, nil
}

func (m *memConfigStore) latest(_ context.Context, kind, name string) (ConfigVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	if len(vs) == 0 {
		return ConfigVersion{}, errConfigNotFound
	}
	return vs[len(vs)-1], nil
}

func (m *memConfigStore) version(_ context.Context, kind, name string, n int64) (ConfigVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	if n < 1 || n > int64(len(vs)) {
		return ConfigVersion{}, errConfigNotFound
	}
	return vs[n-1], nil
}

func (m *memConfigStore) versions(_ context.Context, kind, name string, after int64, limit int) ([]ConfigVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].Version > after })
	var out []ConfigVersion
	for ; i < len(vs) && len(out) < limit; i++ {
		v := vs[i]
		v.Document = nil
		out = append(out, v)
	}
	return out, nil
}

// pgConfigStore keeps versions in PostgreSQL: writes on the primary in one
// transaction with the commit hook, reads through the replica split. A read
// right after a write may not see it yet when a replica lags.
type pgConfigStore struct {
	db    *pgsplit.DB
	table string
}

func openPGConfigStore(ctx context.Context, db *pgsplit.DB, prefix string) (*pgConfigStore, error) {
	s := &pgConfigStore{db: db, table: pgx.Identifier{prefix + "config_versions"}.Sanitize()}
	_, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		kind text NOT NULL,
		name text NOT NULL,
		version bigint NOT NULL,
		digest text NOT NULL,
		created_at timestamptz NOT NULL,
		document bytea NOT NULL,
		PRIMARY KEY (kind, name, version))`)
	if err != nil && !isUniqueViolation(err) {
		return nil, fmt.Errorf("config: creating table: %w", err)
	}
	return s, nil
}

func (s *pgConfigStore) put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time,
	commit func(context.Context, ConfigVersion, string) error) (ConfigVersion, bool, error) {
	tx, err := s.db.Primary().Begin(ctx)
	if err != nil {
		return ConfigVersion{}, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Serialize writers of this document for the transaction, then read
	// its latest version on the primary.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.table+"/"+kind+"/"+name); err != nil {
		return ConfigVersion{}, false, err
	}
	var latest int64
	var prev string
	err = tx.QueryRow(ctx, `SELECT version, digest FROM `+s.table+` WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`,
		kind, name).Scan(&latest, &prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return ConfigVersion{}, false, err
	}
	if latest > 0 && prev == digest {
		tx.Rollback(ctx)
		v, err := s.version(ctx, kind, name, latest)
		if errors.Is(err, errConfigNotFound) {
			// A lagging replica: read it on the primary.
			v, err = s.scanOneOn(ctx, s.db.Primary(), selectVersion(s.table), kind, name, latest)
		}
		return v, false, err
	}
	if latest >= maxConfigVersions {
		return ConfigVersion{}, false, errConfigFull
	}
	v := ConfigVersion{Kind: kind, Name: name, Version: latest + 1, Digest: digest, CreatedAt: at, Document: doc}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (kind, name, version, digest, created_at, document) VALUES ($1, $2, $3, $4, $5, $6)`,
		v.Kind, v.Name, v.Version, v.Digest, v.CreatedAt, doc); err != nil {
		return ConfigVersion{}, false, err
	}
	if err := commit(ctx, v, prev); err != nil {
		return ConfigVersion{}, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return ConfigVersion{}, false, err
	}
	return v, true, nil
}

func selectVersion(table string) string {
	return `SELECT kind, name, version, digest, created_at, document FROM ` + table + ` WHERE kind = $1 AND name = $2 AND version = $3`
}

func (s *pgConfigStore) scanOneOn(ctx context.Context, q pgsplit.Querier, sql string, args ...any) (ConfigVersion, error) {
	var v ConfigVersion
	var doc []byte
	err := q.QueryRow(ctx, sql, args...).Scan(&v.Kind, &v.Name, &v.Version, &v.Digest, &v.CreatedAt, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, errConfigNotFound
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.Document = doc
	return v, err
}

func (s *pgConfigStore) scanOne(ctx context.Context, sql string, args ...any) (ConfigVersion, error) {
	var v ConfigVersion
	var doc []byte
	err := s.db.ReadRow(ctx, []any{&v.Kind, &v.Name, &v.Version, &v.Digest, &v.CreatedAt, &doc}, sql, args...)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, errConfigNotFound
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.Document = doc
	return v, err
}

func (s *pgConfigStore) latest(ctx context.Context, kind, name string) (ConfigVersion, error) {
	return s.scanOne(ctx, `SELECT kind, name, version, digest, created_at, document FROM `+s.table+
		` WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, kind, name)
}

func (s *pgConfigStore) version(ctx context.Context, kind, name string, n int64) (ConfigVersion, error) {
	return s.scanOne(ctx, selectVersion(s.table), kind, name, n)
}

func (s *pgConfigStore) versions(ctx context.Context, kind, name string, after int64, limit int) ([]ConfigVersion, error) {
	var out []ConfigVersion
	err := s.db.Read(ctx, func(ctx context.Context, q pgsplit.Querier) error {
		rows, err := q.Query(ctx, `SELECT kind, name, version, digest, created_at FROM `+s.table+
			` WHERE kind = $1 AND name = $2 AND version > $3 ORDER BY version LIMIT $4`, kind, name, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConfigVersion, error) {
			var v ConfigVersion
			err := row.Scan(&v.Kind, &v.Name, &v.Version, &v.Digest, &v.CreatedAt)
			v.CreatedAt = v.CreatedAt.UTC()
			return v, err
		})
		return err
	})
	return out, err
}
