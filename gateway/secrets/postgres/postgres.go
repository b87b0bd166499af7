// Package postgres is a gateway/secrets Store on PostgreSQL, for replicas of
// a gateway that share one database.
//
// The records live in one table, <prefix>secrets (id text primary key,
// envelope bytea, version bigint, updated_at timestamptz), on the primary:
// a rotation must see its own writes, so no read replica is used. Updates
// are conditional on the version. The rotation lock is a session-level
// advisory lock (pg_try_advisory_lock) keyed by the table name, so one
// replica rotates at a time; [Store.Age] measures a record's age by the
// database's clock (updated_at), so the replicas agree on whether a
// scheduled rotation is due. The store sees envelopes only, never
// plaintext. It passes gateway/secrets/secretstest.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/gateway/secrets"
)

// Config configures a [Store].
type Config struct {
	// DB is the pool of the primary. Required.
	DB *pgxpool.Pool
	// TablePrefix starts the table name ("" gives "secrets"). It must be
	// a valid SQL identifier prefix; it is quoted.
	TablePrefix string
}

// Store is a secrets.Store in PostgreSQL. It is safe for concurrent use,
// by several processes sharing the database.
type Store struct {
	pool    *pgxpool.Pool
	table   string
	lockKey int64
}

var _ secrets.Store = (*Store)(nil)

// New returns the store; call Migrate before using it.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("secrets/postgres: Config.DB is required")
	}
	table := cfg.TablePrefix + "secrets"
	h := fnv.New64a()
	h.Write([]byte("talos-kek-rotation:" + table))
	return &Store{pool: cfg.DB, table: pgx.Identifier{table}.Sanitize(), lockKey: int64(h.Sum64())}, nil
}

// Migrate creates the table when it does not exist. Several processes may
// run it at once.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		id text PRIMARY KEY,
		envelope bytea NOT NULL,
		version bigint NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil && !isUniqueViolation(err) { // concurrent CREATE TABLE IF NOT EXISTS can race on the type
		return fmt.Errorf("secrets/postgres: creating the table: %w", err)
	}
	return nil
}

// Get implements secrets.Store.
func (s *Store) Get(ctx context.Context, id string) (secrets.Record, error) {
	r := secrets.Record{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT envelope, version FROM `+s.table+` WHERE id = $1`, id).Scan(&r.Envelope, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return secrets.Record{}, secrets.ErrNotFound
	}
	return r, err
}

// List implements secrets.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]secrets.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, envelope, version FROM `+s.table+` WHERE starts_with(id, $1) ORDER BY id COLLATE "C"`, prefix)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (secrets.Record, error) {
		var r secrets.Record
		err := row.Scan(&r.ID, &r.Envelope, &r.Version)
		return r, err
	})
}

// Create implements secrets.Store.
func (s *Store) Create(ctx context.Context, id string, env []byte) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (id, envelope, version) VALUES ($1, $2, 1) ON CONFLICT (id) DO NOTHING`, id, env)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return secrets.ErrExists
	}
	return nil
}

// Update implements secrets.Store.
func (s *Store) Update(ctx context.Context, id string, env []byte, version int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET envelope = $2, version = version + 1, updated_at = now() WHERE id = $1 AND version = $3`, id, env, version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.table+` WHERE id = $1)`, id).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return secrets.ErrNotFound
	}
	return secrets.ErrConflict
}

// Remove implements secrets.Store.
func (s *Store) Remove(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE id = $1`, id)
	return err
}

// Age implements secrets.Store: clock_timestamp() - updated_at, both by the database's
// clock, so replicas with skewed clocks agree.
func (s *Store) Age(ctx context.Context, id string) (time.Duration, error) {
	var us int64
	err := s.pool.QueryRow(ctx, `SELECT GREATEST(0, (EXTRACT(EPOCH FROM (clock_timestamp() - updated_at)) * 1000000))::bigint FROM `+s.table+` WHERE id = $1`, id).Scan(&us)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, secrets.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	return time.Duration(us) * time.Microsecond, nil
}

// TryLock implements secrets.Store with a session-level advisory lock held
// on one pooled connection until unlock.
func (s *Store) TryLock(ctx context.Context) (func(), bool, error) {
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
		ctx, cancel := context.WithTimeout(context.Background(), secrets.UnlockTimeout)
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
