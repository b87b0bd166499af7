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
	"os"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/pgsplit"
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

// memConfigStore keeps versions in memory.
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

// fileConfigStore is the embedded default: the versions in memory, and each
// new version appended as one JSON line to DataDir/config-versions.jsonl
// (fsynced) so they survive a restart. The audit hook runs before the line
// is written: a failed write after a successful hook leaves an audit event
// for a change that was not applied (never the reverse).
type fileConfigStore struct {
	*memConfigStore
	f *os.File
}

const configFileName = "config-versions.jsonl"

func openFileConfigStore(path string) (*fileConfigStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &fileConfigStore{memConfigStore: newMemConfigStore(), f: f}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// load replays the file. A torn last line (a crash during an append) is
// cut off; any other damage is an error.
func (s *fileConfigStore) load() error {
	raw, err := io.ReadAll(s.f)
	if err != nil {
		return fmt.Errorf("config: reading %s: %w", s.f.Name(), err)
	}
	good := 0
	for len(raw[good:]) > 0 {
		line, _, complete := bytes.Cut(raw[good:], []byte("\n"))
		var v ConfigVersion
		err := json.Unmarshal(line, &v)
		if err == nil {
			err = s.checkLoaded(v)
		}
		if err != nil {
			if !complete {
				break // torn tail
			}
			return fmt.Errorf("config: %s is damaged at byte %d: %v", s.f.Name(), good, err)
		}
		k := memKey(v.Kind, v.Name)
		s.docs[k] = append(s.docs[k], v)
		good += len(line) + 1
		if !complete {
			good--
			break
		}
	}
	if good < len(raw) {
		if err := s.f.Truncate(int64(good)); err != nil {
			return fmt.Errorf("config: cutting a torn line: %w", err)
		}
	}
	if _, err := s.f.Seek(int64(good), io.SeekStart); err != nil {
		return err
	}
	return nil
}

func (s *fileConfigStore) checkLoaded(v ConfigVersion) error {
	if v.Version != int64(len(s.docs[memKey(v.Kind, v.Name)]))+1 {
		return errors.New("versions out of order")
	}
	canon, err := contracts.Canonicalize(v.Document)
	if err != nil || !bytes.Equal(canon, v.Document) {
		return errors.New("document is not canonical JSON")
	}
	sum := sha256.Sum256(canon)
	if hex.EncodeToString(sum[:]) != v.Digest {
		return errors.New("digest does not match the document")
	}
	return nil
}

func (s *fileConfigStore) put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time,
	commit func(context.Context, ConfigVersion, string) error) (ConfigVersion, bool, error) {
	return s.memConfigStore.put(ctx, kind, name, digest, doc, at, func(ctx context.Context, v ConfigVersion, prev string) error {
		if err := commit(ctx, v, prev); err != nil {
			return err
		}
		line, err := json.Marshal(v)
		if err != nil {
			return err
		}
		off, err := s.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := s.f.Write(append(line, '\n')); err != nil {
			s.f.Truncate(off)
			s.f.Seek(off, io.SeekStart)
			return err
		}
		return s.f.Sync()
	})
}

func (s *fileConfigStore) Close() error { return s.f.Close() }
