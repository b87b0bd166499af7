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

// Querier is what [Config.Read] hands a read: the query methods of
// *pgxpool.Pool, *pgxpool.Conn and pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures a Store.
type Config struct {
	// DB is the connection pool. Required.
	DB DB
	// Read, when set, runs [Store.All] (the admin lists, and the RBAC and
	// budget state): it calls fn with a Querier of its choice (a read
	// replica, or the primary, as gateway/pgsplit's DB.ReadIfAllowed does
	// for the requests that may read a replica) and may call it twice.
	// [Store.Get] (admin identity and session lookups, principal
	// registrations) always reads DB. Nil runs All on DB.
	Read func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
	// TablePrefix is prepended to the table name. If empty, "talos_". It
	// must match [a-z_][a-z0-9_]{0,40}.
	TablePrefix string
}

// Store is an admin.Store on PostgreSQL.
type Store struct {
	db    DB
	read  func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
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
	st := &Store{db: cfg.DB, read: cfg.Read, table: cfg.TablePrefix + "admin_docs"}
	if st.read == nil {
		st.read = func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error { return fn(ctx, cfg.DB) }
	}
	return st, nil
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
	var out []admin.Doc
	err := s.read(ctx, func(ctx context.Context, db Querier) error {
		out = nil
		rows, err := db.Query(ctx, `SELECT kind, id, doc FROM `+s.table+` ORDER BY kind COLLATE "C", id COLLATE "C"`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d admin.Doc
			var doc []byte
			if err := rows.Scan(&d.Kind, &d.ID, &doc); err != nil {
				return err
			}
			d.Doc = doc
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}
