// Package postgres is a PostgreSQL ratchet.SessionStore (pgx/v5).
//
// # Model
//
// One table, <prefix>ratchet_sessions (id text primary key, version bigint,
// state bytea, updated_at timestamptz), holds sealed session blobs.
// Migrate creates it. Save is a single conditional INSERT or UPDATE, so
// concurrent writers never overwrite each other: the loser gets
// ratchet.ErrConflict.
//
// # Security properties
//
// The store only ever sees blobs sealed by ratchet.Session.MarshalSealed;
// it holds no key material in clear. A failing database is reported as an
// error and never as "not found".
//
// # Concurrency
//
// A Store is safe for concurrent use, as its DB (a *pgxpool.Pool) is.
//
// # Compatibility
//
// This release writes table layout 1: the one table above, with exactly
// those four columns. The version column is each row's optimistic
// concurrency counter (1 on insert, +1 per Save), not a layout version;
// the table carries no layout marker.
//
//   - Migrate only runs CREATE TABLE IF NOT EXISTS. It never alters an
//     existing table, so it is safe to run at every start, and it does not
//     upgrade or check a table created by another layout.
//   - A later layout will use a new table name (for example
//     <prefix>ratchet_sessions_v2) with a documented copy step, never an
//     in-place ALTER, so processes of the old and new release never write
//     one table in two layouts.
//   - The state column holds the blob ratchet.Session.MarshalSealed
//     returned, byte for byte. Its format is versioned inside the blob (the
//     sealer's envelope, for identity.Keyring the contract envelope v1, and
//     the ratchet's sealed state version), so a sealed-state change needs no
//     table change: rows written by this release stay readable by releases
//     that read that state version. To rotate the key-encryption key, Load,
//     ratchet.UnmarshalSealed, MarshalSealed (under the keyring's new
//     primary key) and Save each row; the old key must stay in the keyring
//     until every row is rewritten.
//   - Rows are independent and keyed by the caller's session id.
package postgres

import (
	"context"
	"errors"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/ratchet"
)

// DB is the part of pgx a Store uses; *pgxpool.Pool, *pgx.Conn and pgx.Tx
// satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures a Store.
type Config struct {
	// DB is the connection pool. Required.
	DB DB
	// TablePrefix is prepended to the table name. If empty, "talos_" is
	// used. It must match [a-z_][a-z0-9_]{0,40}.
	TablePrefix string
}

// Store is a ratchet.SessionStore on PostgreSQL.
type Store struct {
	db                      DB
	table                   string
	qLoad, qInsert, qUpdate string
	qDelete, qCreate        string
}

var _ ratchet.SessionStore = (*Store)(nil)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a Store. Call Migrate once before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("ratchet/postgres: Config.DB is required")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, errors.New("ratchet/postgres: invalid TablePrefix")
	}
	t := cfg.TablePrefix + "ratchet_sessions"
	return &Store{
		db:      cfg.DB,
		table:   t,
		qLoad:   `SELECT version, state FROM ` + t + ` WHERE id = $1`,
		qInsert: `INSERT INTO ` + t + ` (id, version, state) VALUES ($1, 1, $2) ON CONFLICT (id) DO NOTHING`,
		qUpdate: `UPDATE ` + t + ` SET version = version + 1, state = $3, updated_at = now() WHERE id = $1 AND version = $2`,
		qDelete: `DELETE FROM ` + t + ` WHERE id = $1`,
		qCreate: `CREATE TABLE IF NOT EXISTS ` + t + ` (
			id text PRIMARY KEY,
			version bigint NOT NULL CHECK (version > 0),
			state bytea NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT now())`,
	}, nil
}

// Table returns the table name.
func (s *Store) Table() string { return s.table }

// Migrate creates the table if it does not exist.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.db.Exec(ctx, s.qCreate)
	return dbErr("migrate", err)
}

func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return contracts.Wrap(contracts.CodeInternal, "ratchet/postgres: "+op+" failed", err)
}

// Load implements ratchet.SessionStore.
func (s *Store) Load(ctx context.Context, id string) ([]byte, uint64, error) {
	var v int64
	var blob []byte
	err := s.db.QueryRow(ctx, s.qLoad, id).Scan(&v, &blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, ratchet.NotFound(id)
	}
	if err != nil {
		return nil, 0, dbErr("load", err)
	}
	if v <= 0 {
		return nil, 0, dbErr("load", errors.New("stored version is not positive"))
	}
	return blob, uint64(v), nil
}

// Save implements ratchet.SessionStore.
func (s *Store) Save(ctx context.Context, id string, expected uint64, sealed []byte) (uint64, error) {
	if expected >= 1<<63-1 {
		return 0, ratchet.ErrConflict
	}
	if sealed == nil {
		sealed = []byte{}
	}
	var tag pgconn.CommandTag
	var err error
	if expected == 0 {
		tag, err = s.db.Exec(ctx, s.qInsert, id, sealed)
	} else {
		tag, err = s.db.Exec(ctx, s.qUpdate, id, int64(expected), sealed)
	}
	if err != nil {
		return 0, dbErr("save", err)
	}
	if tag.RowsAffected() != 1 {
		return 0, ratchet.ErrConflict
	}
	return expected + 1, nil
}

// Delete implements ratchet.SessionStore.
func (s *Store) Delete(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, s.qDelete, id)
	return dbErr("delete", err)
}
