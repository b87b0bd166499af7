// Package postgres is an admin.Store on PostgreSQL (pgx), shared by every
// gateway replica on the same database.
//
// One table, <prefix>admin_docs (kind, id, doc), primary key (kind, id).
// A put is one upsert, so it is durable and visible to every replica when
// it returns; the store reports itself shared (admin.SharedStore), so the
// principal registry re-reads cached registrations after
// admin.PrincipalCacheTTL.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
)

// DB is the part of pgx a Store uses; *pgxpool.Pool and *pgx.Conn
// satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
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

// Store is an admin.Store on PostgreSQL.
type Store struct {
	db    DB
	table string
}

var _ admin.SharedStore = (*Store)(nil)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a Store. Call Migrate once before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "admin/postgres: Config.DB is required")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "admin/postgres: invalid TablePrefix")
	}
	return &Store{db: cfg.DB, table: cfg.TablePrefix + "admin_docs"}, nil
}

// Migrate creates the table if it does not exist.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	kind text NOT NULL, id text NOT NULL, doc bytea NOT NULL, PRIMARY KEY (kind, id))`)
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Shared reports true: other replicas write the same table.
func (s *Store) Shared() bool { return true }

func unavailable(err error) error {
	return contracts.Wrap(contracts.CodeInternal, "admin state store unavailable", err)
}

func notSaved(err error) error {
	return contracts.Wrap(contracts.CodeInternal, "admin state not saved", err)
}

// Put implements admin.Store.
func (s *Store) Put(ctx context.Context, d admin.Doc) error {
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.table+` (kind, id, doc) VALUES ($1, $2, $3)
	ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc`, d.Kind, d.ID, []byte(d.Doc))
	if err != nil {
		return notSaved(err)
	}
	return nil
}

// Delete implements admin.Store.
func (s *Store) Delete(ctx context.Context, kind, id string) (bool, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM `+s.table+` WHERE kind = $1 AND id = $2`, kind, id)
	if err != nil {
		return false, notSaved(err)
	}
	return tag.RowsAffected() > 0, nil
}

// Get implements admin.Store.
func (s *Store) Get(ctx context.Context, kind, id string) (json.RawMessage, bool, error) {
	var doc []byte
	err := s.db.QueryRow(ctx, `SELECT doc FROM `+s.table+` WHERE kind = $1 AND id = $2`, kind, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	return doc, true, nil
}

// All implements admin.Store. Rows are ordered by kind then id in byte
// order (COLLATE "C"), the order of the file store.
func (s *Store) All(ctx context.Context) ([]admin.Doc, error) {
	rows, err := s.db.Query(ctx, `SELECT kind, id, doc FROM `+s.table+` ORDER BY kind COLLATE "C", id COLLATE "C"`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []admin.Doc
	for rows.Next() {
		var d admin.Doc
		var doc []byte
		if err := rows.Scan(&d.Kind, &d.ID, &doc); err != nil {
			return nil, unavailable(err)
		}
		d.Doc = doc
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}
