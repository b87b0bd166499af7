// Package postgres is an audit.Store on PostgreSQL (pgx/v5) for logs shared
// by several processes.
//
// # Model
//
// Three tables, <prefix>audit_head (one row: the size and the latest
// checkpoint), <prefix>audit_entries (index, entry bytes, and the indexed
// query fields: ts, principal, surface, cursor position) and
// <prefix>audit_hashes (the tlog stored hashes by storage index). Migrate
// creates them.
//
// # Sequencing
//
// Append runs one transaction: it locks the head row (SELECT … FOR
// UPDATE), reads the old tree's frontier hashes, computes the new hashes,
// inserts entries and hashes with COPY and moves the head. Appenders in any
// number of processes are serialized by the row lock, so the database
// alone decides the order and there is exactly one tree.
//
// # Reads
//
// [Store.Query], the indexed event query behind audit.Log.Query (audit
// searches, a live stream's polling), runs through Config.Read when it is
// set, so a deployment can serve it from a read replica. Everything the
// tree depends on (Append, Size, ReadHashes, ReadEntries, Checkpoint) reads
// the primary: proofs and checkpoints are always current.
//
// # Security properties
//
// The store holds sealed events and public hashes only. A failing database
// is reported as audit.ErrStore, never as "not found"; the audit.Log
// re-verifies the signed checkpoint against the stored tree when it opens.
//
// # Concurrency
//
// A Store is safe for concurrent use when its DB is (a *pgxpool.Pool).
package postgres

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/tlog"
)

// DB is the part of pgx a Store uses; *pgxpool.Pool and *pgx.Conn satisfy
// it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
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
	// Read, when set, runs the event queries ([Store.Query]): it calls fn
	// with a Querier of its choice (a read replica, or the primary when the
	// replica lags behind the caller's writes or fails, as
	// gateway/pgsplit's DB.Read does) and may call it twice. Appends, the
	// tree's hashes, entries and checkpoint always use DB. Nil runs the
	// queries on DB.
	Read func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
	// TablePrefix is prepended to the table names. If empty, "talos_". It
	// must match [a-z_][a-z0-9_]{0,40}.
	TablePrefix string
}

// Store is an audit.Store and audit.Querier on PostgreSQL.
type Store struct {
	db                    DB
	read                  func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error
	head, entries, hashes string
}

var (
	_ audit.Store   = (*Store)(nil)
	_ audit.Querier = (*Store)(nil)
)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a Store. Call Migrate once before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit/postgres: Config.DB is required")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit/postgres: invalid TablePrefix")
	}
	p := cfg.TablePrefix + "audit_"
	st := &Store{db: cfg.DB, read: cfg.Read, head: p + "head", entries: p + "entries", hashes: p + "hashes"}
	if st.read == nil {
		st.read = func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error { return fn(ctx, cfg.DB) }
	}
	return st, nil
}

// Migrate creates the tables and indexes if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + s.head + ` (
			id int PRIMARY KEY CHECK (id = 1),
			size bigint NOT NULL,
			cp_size bigint,
			checkpoint bytea)`,
		`INSERT INTO ` + s.head + ` (id, size) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS ` + s.entries + ` (
			idx bigint PRIMARY KEY,
			data bytea NOT NULL,
			ts timestamptz,
			pos_ts bigint,
			event_id text COLLATE "C",
			principal_id text,
			surface_id text)`,
		`CREATE INDEX IF NOT EXISTS ` + s.entries + `_pos ON ` + s.entries + ` (pos_ts DESC, event_id DESC, idx DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + s.entries + `_principal ON ` + s.entries + ` (principal_id, pos_ts DESC, event_id DESC)`,
		`CREATE INDEX IF NOT EXISTS ` + s.entries + `_surface ON ` + s.entries + ` (surface_id, pos_ts DESC, event_id DESC)`,
		`CREATE TABLE IF NOT EXISTS ` + s.hashes + ` (idx bigint PRIMARY KEY, hash bytea NOT NULL)`,
	}
	for _, q := range stmts {
		if _, err := s.db.Exec(ctx, q); err != nil {
			return audit.StoreError("postgres: migrate", err)
		}
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	for _, x := range indexes {
		if x < 0 {
			return nil, audit.NotFound("negative hash index")
		}
	}
	rows, err := q.Query(ctx, `SELECT idx, hash FROM `+s.hashes+` WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, audit.StoreError("postgres: read hashes", err)
	}
	defer rows.Close()
	got := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, audit.StoreError("postgres: read hashes", err)
		}
		if len(h) != tlog.HashSize {
			return nil, audit.StoreError("postgres: stored hash has the wrong length", nil)
		}
		got[idx] = tlog.Hash(h)
	}
	if err := rows.Err(); err != nil {
		return nil, audit.StoreError("postgres: read hashes", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, audit.NotFound("hash index beyond the log")
		}
		out[i] = h
	}
	return out, nil
}

// Append implements audit.Store: one transaction serialized on the head row.
func (s *Store) Append(ctx context.Context, entries [][]byte, build audit.BuildFunc) (first uint64, err error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, audit.StoreError("postgres: begin", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var size int64
	if err := tx.QueryRow(ctx, `SELECT size FROM `+s.head+` WHERE id = 1 FOR UPDATE`).Scan(&size); err != nil {
		return 0, audit.StoreError("postgres: lock head", err)
	}
	var readErr error
	hs, err := build(uint64(size), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		h, err := s.readHashes(ctx, tx, idx)
		if err != nil && readErr == nil {
			readErr = err
		}
		return h, err
	}))
	if err != nil {
		if readErr != nil {
			return 0, readErr
		}
		return 0, err
	}
	want := tlog.StoredHashCount(size+int64(len(entries))) - tlog.StoredHashCount(size)
	if int64(len(hs)) != want {
		return 0, audit.StoreError("postgres: build returned the wrong number of hashes", nil)
	}
	rows := make([][]any, len(entries))
	for i, e := range entries {
		row := []any{size + int64(i), e, nil, nil, nil, nil, nil}
		if pos, ts, pid, sid, err := audit.QueryFields(e); err == nil {
			row[2], row[3], row[4], row[5], row[6] = ts, pos.Timestamp, pos.EventID, pid, sid
		}
		rows[i] = row
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.entries},
		[]string{"idx", "data", "ts", "pos_ts", "event_id", "principal_id", "surface_id"}, pgx.CopyFromRows(rows)); err != nil {
		return 0, audit.StoreError("postgres: insert entries", err)
	}
	base := tlog.StoredHashCount(size)
	hrows := make([][]any, len(hs))
	for i, h := range hs {
		hrows[i] = []any{base + int64(i), h[:]}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.hashes}, []string{"idx", "hash"}, pgx.CopyFromRows(hrows)); err != nil {
		return 0, audit.StoreError("postgres: insert hashes", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE `+s.head+` SET size = $1 WHERE id = 1`, size+int64(len(entries))); err != nil {
		return 0, audit.StoreError("postgres: move head", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, audit.StoreError("postgres: commit", err)
	}
	return uint64(size), nil
}

// Size implements audit.Store.
func (s *Store) Size(ctx context.Context) (uint64, error) {
	var size int64
	if err := s.db.QueryRow(ctx, `SELECT size FROM `+s.head+` WHERE id = 1`).Scan(&size); err != nil {
		return 0, audit.StoreError("postgres: read size", err)
	}
	return uint64(size), nil
}

// ReadHashes implements audit.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return s.readHashes(ctx, s.db, indexes)
}

// ReadEntries implements audit.Store.
func (s *Store) ReadEntries(ctx context.Context, start, end uint64) ([][]byte, error) {
	if start > end || end > 1<<62 {
		return nil, audit.NotFound("entries beyond the log")
	}
	rows, err := s.db.Query(ctx, `SELECT idx, data FROM `+s.entries+` WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(start), int64(end))
	if err != nil {
		return nil, audit.StoreError("postgres: read entries", err)
	}
	defer rows.Close()
	out := make([][]byte, 0, end-start)
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, audit.StoreError("postgres: read entries", err)
		}
		if idx != int64(start)+int64(len(out)) {
			return nil, audit.StoreError("postgres: entries have a gap", nil)
		}
		out = append(out, data)
	}
	if err := rows.Err(); err != nil {
		return nil, audit.StoreError("postgres: read entries", err)
	}
	if uint64(len(out)) != end-start {
		return nil, audit.NotFound("entries beyond the log")
	}
	return out, nil
}

// Checkpoint implements audit.Store.
func (s *Store) Checkpoint(ctx context.Context) ([]byte, error) {
	var cp []byte
	if err := s.db.QueryRow(ctx, `SELECT checkpoint FROM `+s.head+` WHERE id = 1`).Scan(&cp); err != nil {
		return nil, audit.StoreError("postgres: read checkpoint", err)
	}
	if cp == nil {
		return nil, audit.NotFound("no checkpoint")
	}
	return cp, nil
}

// PutCheckpoint implements audit.Store: a conditional update that keeps
// the largest checkpoint.
func (s *Store) PutCheckpoint(ctx context.Context, size uint64, note []byte) error {
	_, err := s.db.Exec(ctx, `UPDATE `+s.head+` SET checkpoint = $1, cp_size = $2
		WHERE id = 1 AND (cp_size IS NULL OR cp_size < $2) AND size >= $2`, note, int64(size))
	if err != nil {
		return audit.StoreError("postgres: write checkpoint", err)
	}
	return nil
}

// Query implements audit.Querier with the indexes: same pages as
// audit.ScanQuery.
func (s *Store) Query(ctx context.Context, q audit.Query) (audit.Page, error) {
	limit, after, err := audit.CheckQuery(q)
	if err != nil {
		return audit.Page{}, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	where = append(where, "pos_ts IS NOT NULL")
	if !q.Since.IsZero() {
		where = append(where, "ts >= "+arg(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "ts < "+arg(q.Until))
	}
	if q.PrincipalID != "" {
		where = append(where, "principal_id = "+arg(q.PrincipalID))
	}
	if q.SurfaceID != "" {
		where = append(where, "surface_id = "+arg(q.SurfaceID))
	}
	if after != nil {
		where = append(where, "(pos_ts, event_id) < ("+arg(after.Timestamp)+", "+arg(after.EventID)+")")
	}
	sql := `SELECT idx, data FROM ` + s.entries + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY pos_ts DESC, event_id DESC, idx DESC LIMIT ` + arg(limit+1)
	var page audit.Page
	var more bool
	var bad error // a stored event that does not parse: not the database failing
	err = s.read(ctx, func(ctx context.Context, db Querier) error {
		page, more, bad = audit.Page{}, false, nil
		rows, err := db.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var idx int64
			var data []byte
			if err := rows.Scan(&idx, &data); err != nil {
				return err
			}
			if len(page.Entries) == limit {
				more = true
				break
			}
			e, err := audit.ParseEvent(data)
			if err != nil {
				bad = err
				return nil
			}
			pos, _, _, _, err := audit.QueryFields(data)
			if err != nil {
				bad = err
				return nil
			}
			cur, err := pos.Encode()
			if err != nil {
				bad = audit.StoreError("postgres: stored event has no cursor", err)
				return nil
			}
			page.Entries = append(page.Entries, audit.Entry{Index: uint64(idx), Cursor: cur, Event: e})
		}
		if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	if err != nil {
		return audit.Page{}, audit.StoreError("postgres: query", err)
	}
	if bad != nil {
		return audit.Page{}, bad
	}
	if more {
		page.Next = page.Entries[len(page.Entries)-1].Cursor
	}
	return page, nil
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
