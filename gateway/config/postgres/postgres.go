// Package postgres is a gateway/config Store on PostgreSQL, for replicas of
// a gateway that share one database.
//
// Versions live in one table, <prefix>config_versions (kind, name, version,
// digest, created_at, document bytea; primary key (kind, name, version)).
// A Put runs on the primary in one transaction that takes an advisory
// transaction lock on the document, reads its latest version, inserts the
// next one and runs the commit hook before committing: concurrent writers,
// in any process, get dense versions, and a failed hook stores nothing.
// Writers in one process also take a process-local lock first, so they hold
// one connection at a time: the commit hook may use the same pool (an audit
// log in the same database) without the waiting writers exhausting it.
// Reads go through Config.Read when set (a read replica with fallback to
// the primary, such as a read/write split), so a read right after a write
// may not see it yet when the replica lags, unless the split gives
// read-your-writes (gateway/pgsplit's DB.Wrote and WithCaller) or sends the
// read to the primary (DB.ReadIfAllowed outside a listing). It passes
// gateway/config/configtest.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/config"
)

// A Querier runs statements: *pgxpool.Pool, *pgxpool.Conn and pgx.Tx are
// Queriers.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = pgx.Tx(nil)
)

// Config configures a [Store].
type Config struct {
	// DB is the pool of the primary: every write, and reads when Read is
	// nil. Required.
	DB *pgxpool.Pool
	// Read, when set, runs the store's read-only queries: it calls fn with
	// a Querier of its choice (a replica, the primary after a replica
	// failure) and may call it twice. Nil runs them on DB.
	Read func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
	// TablePrefix starts the table name ("" gives "config_versions"); it
	// is quoted.
	TablePrefix string
}

// Store is a config.Store in PostgreSQL. It is safe for concurrent use, by
// several processes sharing the database.
type Store struct {
	mu    sync.Mutex // serializes this process's writers (see the package doc)
	db    *pgxpool.Pool
	read  func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
	table string
}

var _ config.Store = (*Store)(nil)

// New returns the store; call Migrate before using it.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("config/postgres: Config.DB is required")
	}
	s := &Store{db: cfg.DB, read: cfg.Read, table: pgx.Identifier{cfg.TablePrefix + "config_versions"}.Sanitize()}
	if s.read == nil {
		s.read = func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error { return fn(ctx, cfg.DB) }
	}
	return s, nil
}

// Migrate creates the table when it does not exist. Several processes may
// run it at once.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		kind text NOT NULL,
		name text NOT NULL,
		version bigint NOT NULL,
		digest text NOT NULL,
		created_at timestamptz NOT NULL,
		document bytea NOT NULL,
		PRIMARY KEY (kind, name, version))`)
	if err != nil && !isUniqueViolation(err) { // concurrent CREATE TABLE IF NOT EXISTS can race on the type
		return fmt.Errorf("config/postgres: creating the table: %w", err)
	}
	return nil
}

// Put implements config.Store.
func (s *Store) Put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time, commit config.CommitFunc) (config.Version, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return config.Version{}, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Serialize writers of this document for the transaction, then read
	// its latest version on the primary.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.table+"/"+kind+"/"+name); err != nil {
		return config.Version{}, false, err
	}
	var latest int64
	var prev string
	err = tx.QueryRow(ctx, `SELECT version, digest FROM `+s.table+` WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`,
		kind, name).Scan(&latest, &prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return config.Version{}, false, err
	}
	if latest > 0 && prev == digest {
		v, err := scanOne(ctx, tx, s.selectVersion(), kind, name, latest)
		return v, false, err
	}
	if latest >= config.MaxVersions {
		return config.Version{}, false, config.ErrFull
	}
	v := config.Version{Kind: kind, Name: name, Version: latest + 1, Digest: digest, CreatedAt: at, Document: doc}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (kind, name, version, digest, created_at, document) VALUES ($1, $2, $3, $4, $5, $6)`,
		v.Kind, v.Name, v.Version, v.Digest, v.CreatedAt, doc); err != nil {
		return config.Version{}, false, err
	}
	if err := commit(ctx, v, prev); err != nil {
		return config.Version{}, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return config.Version{}, false, err
	}
	return v, true, nil
}

func (s *Store) selectVersion() string {
	return `SELECT kind, name, version, digest, created_at, document FROM ` + s.table + ` WHERE kind = $1 AND name = $2 AND version = $3`
}

func scanOne(ctx context.Context, q Querier, sql string, args ...any) (config.Version, error) {
	var v config.Version
	var doc []byte
	err := q.QueryRow(ctx, sql, args...).Scan(&v.Kind, &v.Name, &v.Version, &v.Digest, &v.CreatedAt, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return config.Version{}, config.ErrNotFound
	}
	if err != nil {
		return config.Version{}, err
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.Document = doc
	return v, nil
}

func (s *Store) readOne(ctx context.Context, sql string, args ...any) (config.Version, error) {
	var v config.Version
	err := s.read(ctx, func(ctx context.Context, q Querier) error {
		var err error
		v, err = scanOne(ctx, q, sql, args...)
		return err
	})
	return v, err
}

// Latest implements config.Store.
func (s *Store) Latest(ctx context.Context, kind, name string) (config.Version, error) {
	return s.readOne(ctx, `SELECT kind, name, version, digest, created_at, document FROM `+s.table+
		` WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, kind, name)
}

// Version implements config.Store.
func (s *Store) Version(ctx context.Context, kind, name string, n int64) (config.Version, error) {
	return s.readOne(ctx, s.selectVersion(), kind, name, n)
}

// Versions implements config.Store.
func (s *Store) Versions(ctx context.Context, kind, name string, after int64, limit int) ([]config.Version, error) {
	var out []config.Version
	err := s.read(ctx, func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, `SELECT kind, name, version, digest, created_at FROM `+s.table+
			` WHERE kind = $1 AND name = $2 AND version > $3 ORDER BY version LIMIT $4`, kind, name, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (config.Version, error) {
			var v config.Version
			err := row.Scan(&v.Kind, &v.Name, &v.Version, &v.Digest, &v.CreatedAt)
			v.CreatedAt = v.CreatedAt.UTC()
			return v, err
		})
		return err
	})
	if out == nil && err == nil {
		out = []config.Version{}
	}
	return out, err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
