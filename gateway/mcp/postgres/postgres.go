// Package postgres is an mcp.IdempotencyStore on PostgreSQL (pgx), for
// gateways that run in several processes or must keep idempotency keys
// across restarts.
//
// One table, <prefix>mcp_idempotency: the key (the gateway's hash of
// principal, tool and client key), the args digest, whether the call is
// done, its result or failure code, and when the key expires. A claim is
// one INSERT … ON CONFLICT that takes over only an expired row, so two
// processes cannot both claim a live key; expiry uses the database clock.
package postgres

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/mcp"
)

// DB is the part of pgx the store uses; *pgxpool.Pool and *pgx.Conn
// satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures a Store.
type Config struct {
	// DB is the connection pool. Required.
	DB DB
	// TablePrefix is prepended to the table name. If empty, "talos_". It
	// must match [a-z_][a-z0-9_]{0,40}.
	TablePrefix string
}

// Store is an mcp.IdempotencyStore on PostgreSQL.
type Store struct {
	db    DB
	table string
}

var _ mcp.IdempotencyStore = (*Store)(nil)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a Store. Call Migrate once before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp/postgres: Config.DB is required")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp/postgres: invalid TablePrefix")
	}
	return &Store{db: cfg.DB, table: cfg.TablePrefix + "mcp_idempotency"}, nil
}

// Migrate creates the table and its expiry index if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + s.table + ` (
			key text PRIMARY KEY,
			digest text NOT NULL,
			done boolean NOT NULL DEFAULT false,
			result bytea,
			code text NOT NULL DEFAULT '',
			expires timestamptz NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + s.table + `_expires ON ` + s.table + ` (expires)`,
	} {
		if _, err := s.db.Exec(ctx, q); err != nil {
			return fail("migrate", err)
		}
	}
	return nil
}

func fail(op string, err error) error {
	return contracts.Wrap(contracts.CodeInternal, "mcp/postgres: "+op+" failed", err)
}

// Claim implements mcp.IdempotencyStore.
func (s *Store) Claim(ctx context.Context, key, digest string, ttl time.Duration) (mcp.IdempotencyRecord, bool, error) {
	for range 2 {
		var claimed bool
		err := s.db.QueryRow(ctx, `INSERT INTO `+s.table+` AS t (key, digest, done, expires)
			VALUES ($1, $2, false, now() + make_interval(secs => $3))
			ON CONFLICT (key) DO UPDATE SET digest = EXCLUDED.digest, done = false, result = NULL, code = '', expires = EXCLUDED.expires
			WHERE t.expires <= now()
			RETURNING true`, key, digest, ttl.Seconds()).Scan(&claimed)
		if err == nil {
			return mcp.IdempotencyRecord{Digest: digest}, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return mcp.IdempotencyRecord{}, false, fail("claim", err)
		}
		var rec mcp.IdempotencyRecord
		err = s.db.QueryRow(ctx, `SELECT digest, done, result, code FROM `+s.table+` WHERE key = $1 AND expires > now()`, key).
			Scan(&rec.Digest, &rec.Done, &rec.Result, &rec.Code)
		if err == nil {
			return rec, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return mcp.IdempotencyRecord{}, false, fail("claim", err)
		}
		// It expired or was released between the two statements: again.
	}
	return mcp.IdempotencyRecord{}, false, contracts.New(contracts.CodeInternal, "mcp/postgres: claim contended")
}

// Complete implements mcp.IdempotencyStore.
func (s *Store) Complete(ctx context.Context, key string, rec mcp.IdempotencyRecord) error {
	if _, err := s.db.Exec(ctx, `UPDATE `+s.table+` SET digest = $2, done = $3, result = $4, code = $5 WHERE key = $1`,
		key, rec.Digest, rec.Done, rec.Result, rec.Code); err != nil {
		return fail("complete", err)
	}
	return nil
}

// Release implements mcp.IdempotencyStore: it forgets a key whose call is
// still in flight (a done key stays).
func (s *Store) Release(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM `+s.table+` WHERE key = $1 AND NOT done`, key); err != nil {
		return fail("release", err)
	}
	return nil
}

// Purge deletes expired keys and returns how many; run it periodically
// to bound the table.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM `+s.table+` WHERE expires <= now()`)
	if err != nil {
		return 0, fail("purge", err)
	}
	return tag.RowsAffected(), nil
}
