package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A secretRecord is one stored envelope. Version increases on every update.
type secretRecord struct {
	ID       string
	Envelope []byte
	Version  int64
}

var (
	errSecretNotFound = errors.New("secrets: not found")
	errSecretExists   = errors.New("secrets: already exists")
	errSecretConflict = errors.New("secrets: version conflict")
)

// secretStore persists sealed envelopes. Implementations are safe for
// concurrent use; they never see plaintext.
type secretStore interface {
	// get returns the record, or errSecretNotFound.
	get(ctx context.Context, id string) (secretRecord, error)
	// list returns every record whose id starts with prefix, sorted by id.
	list(ctx context.Context, prefix string) ([]secretRecord, error)
	// create stores a new record at version 1, or returns errSecretExists.
	create(ctx context.Context, id string, env []byte) error
	// update replaces the envelope if the stored version is version
	// (errSecretConflict otherwise) and increments the version.
	update(ctx context.Context, id string, env []byte, version int64) error
	// remove deletes a record (no error when it is absent).
	remove(ctx context.Context, id string) error
	// tryLock takes the rotation lock without waiting. ok is false when
	// another holder has it. unlock must be called when ok is true.
	tryLock(ctx context.Context) (unlock func(), ok bool, err error)
}

// fileSecretStore keeps the records in DataDir/secrets.json, rewritten
// atomically (temporary file, fsync, rename) on every change. Its rotation
// lock is process-local.
type fileSecretStore struct {
	path string

	rotMu sync.Mutex // the rotation lock

	mu      sync.Mutex // guards records and the file
	records map[string]secretRecord
}

type secretsFile struct {
	Format  string                    `json:"format"`
	Secrets map[string]secretFileItem `json:"secrets"`
}

type secretFileItem struct {
	Envelope json.RawMessage `json:"envelope"`
	Version  int64           `json:"version"`
}

const secretsFileFormat = "talos-server-secrets-v1"

func openFileSecretStore(path string) (*fileSecretStore, error) {
	s := &fileSecretStore{path: path, records: map[string]secretRecord{}}
	raw, err := readLimited(path, maxSecretsFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: reading %s: %w", path, err)
	}
	var f secretsFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Format != secretsFileFormat {
		return nil, fmt.Errorf("secrets: %s is not a %s file", path, secretsFileFormat)
	}
	for id, it := range f.Secrets {
		if it.Version < 1 || len(it.Envelope) == 0 {
			return nil, fmt.Errorf("secrets: %s: bad record %q", path, id)
		}
		s.records[id] = secretRecord{ID: id, Envelope: []byte(it.Envelope), Version: it.Version}
	}
	return s, nil
}

func (s *fileSecretStore) get(_ context.Context, id string) (secretRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return secretRecord{}, errSecretNotFound
	}
	return r, nil
}

func (s *fileSecretStore) list(_ context.Context, prefix string) ([]secretRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []secretRecord
	for id, r := range s.records {
		if strings.HasPrefix(id, prefix) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b secretRecord) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *fileSecretStore) create(_ context.Context, id string, env []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[id]; ok {
		return errSecretExists
	}
	return s.commitLocked(secretRecord{ID: id, Envelope: slices.Clone(env), Version: 1})
}

func (s *fileSecretStore) update(_ context.Context, id string, env []byte, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return errSecretNotFound
	}
	if r.Version != version {
		return errSecretConflict
	}
	return s.commitLocked(secretRecord{ID: id, Envelope: slices.Clone(env), Version: version + 1})
}

// commitLocked writes the file with r applied, and only then updates the
// map: a failed write changes nothing.
func (s *fileSecretStore) commitLocked(r secretRecord) error {
	f := secretsFile{Format: secretsFileFormat, Secrets: make(map[string]secretFileItem, len(s.records)+1)}
	for id, x := range s.records {
		f.Secrets[id] = secretFileItem{Envelope: x.Envelope, Version: x.Version}
	}
	f.Secrets[r.ID] = secretFileItem{Envelope: r.Envelope, Version: r.Version}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("secrets: encoding: %w", err)
	}
	if err := writeFileAtomic(s.path, b, 0o600); err != nil {
		return err
	}
	s.records[r.ID] = r
	return nil
}

func (s *fileSecretStore) remove(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[id]; !ok {
		return nil
	}
	old := s.records[id]
	delete(s.records, id)
	f := secretsFile{Format: secretsFileFormat, Secrets: make(map[string]secretFileItem, len(s.records))}
	for rid, x := range s.records {
		f.Secrets[rid] = secretFileItem{Envelope: x.Envelope, Version: x.Version}
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err == nil {
		err = writeFileAtomic(s.path, b, 0o600)
	}
	if err != nil {
		s.records[id] = old
		return fmt.Errorf("secrets: writing: %w", err)
	}
	return nil
}

func (s *fileSecretStore) tryLock(context.Context) (func(), bool, error) {
	if !s.rotMu.TryLock() {
		return nil, false, nil
	}
	return s.rotMu.Unlock, true, nil
}

// writeFileAtomic replaces path with data: a crash leaves the old or the new
// file, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// pgSecretStore keeps the records in a PostgreSQL table on the primary (the
// replica is not used: a rotation must see its own writes). Its rotation lock
// is a session-level advisory lock, so replicas of the server coordinate.
type pgSecretStore struct {
	pool    *pgxpool.Pool
	table   string
	lockKey int64
}

func openPGSecretStore(ctx context.Context, pool *pgxpool.Pool, prefix string) (*pgSecretStore, error) {
	table := prefix + "secrets"
	h := fnv.New64a()
	h.Write([]byte("talos-kek-rotation:" + table))
	s := &pgSecretStore{pool: pool, table: pgx.Identifier{table}.Sanitize(), lockKey: int64(h.Sum64())}
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		id text PRIMARY KEY,
		envelope bytea NOT NULL,
		version bigint NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil && !isUniqueViolation(err) { // concurrent CREATE TABLE IF NOT EXISTS can race on the type
		return nil, fmt.Errorf("secrets: creating table: %w", err)
	}
	return s, nil
}

func (s *pgSecretStore) get(ctx context.Context, id string) (secretRecord, error) {
	r := secretRecord{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT envelope, version FROM `+s.table+` WHERE id = $1`, id).Scan(&r.Envelope, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, errSecretNotFound
	}
	return r, err
}

func (s *pgSecretStore) list(ctx context.Context, prefix string) ([]secretRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, envelope, version FROM `+s.table+` WHERE starts_with(id, $1) ORDER BY id`, prefix)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (secretRecord, error) {
		var r secretRecord
		err := row.Scan(&r.ID, &r.Envelope, &r.Version)
		return r, err
	})
}

func (s *pgSecretStore) create(ctx context.Context, id string, env []byte) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (id, envelope, version) VALUES ($1, $2, 1) ON CONFLICT (id) DO NOTHING`, id, env)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errSecretExists
	}
	return nil
}

func (s *pgSecretStore) update(ctx context.Context, id string, env []byte, version int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET envelope = $2, version = version + 1, updated_at = now() WHERE id = $1 AND version = $3`, id, env, version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errSecretConflict
	}
	return nil
}

func (s *pgSecretStore) remove(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE id = $1`, id)
	return err
}

func (s *pgSecretStore) tryLock(ctx context.Context) (func(), bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.lockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, err
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		// A fresh context: the unlock must run even when the caller's
		// context has ended. If it fails the connection is destroyed,
		// which releases the session lock.
		ctx, cancel := context.WithTimeout(context.Background(), readyCheckTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, s.lockKey); err != nil {
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
