package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/mcp"
)

// TraceDB is the part of pgx the TraceStore uses; *pgxpool.Pool and
// *pgx.Conn satisfy it.
type TraceDB interface {
	DB
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// TraceStore is an mcp.TraceStore on PostgreSQL, for governed writes in
// several processes or across restarts. Two tables: <prefix>mcp_tga_traces
// (one row per trace: its unique scope, last seq and state) and
// <prefix>mcp_tga_entries (one row per entry). An append is one statement
// that advances the trace's row only from the previous seq and inserts the
// entry, so two writers cannot both add one seq; a committed statement is
// durable (PostgreSQL's own WAL fsync).
type TraceStore struct {
	db             TraceDB
	traces, events string
}

var _ mcp.TraceStore = (*TraceStore)(nil)

// NewTraceStore returns a TraceStore. Call Migrate once before use.
func NewTraceStore(db TraceDB, tablePrefix string) (*TraceStore, error) {
	if db == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp/postgres: a DB is required")
	}
	if tablePrefix == "" {
		tablePrefix = "talos_"
	}
	if !prefixRE.MatchString(tablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp/postgres: invalid TablePrefix")
	}
	return &TraceStore{db: db, traces: tablePrefix + "mcp_tga_traces", events: tablePrefix + "mcp_tga_entries"}, nil
}

// Migrate creates the tables and the index of open traces if they do not
// exist.
func (s *TraceStore) Migrate(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + s.traces + ` (
			trace_id text PRIMARY KEY,
			scope text UNIQUE,
			seq bigint NOT NULL,
			state text NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS ` + s.events + ` (
			trace_id text NOT NULL,
			seq bigint NOT NULL,
			state text NOT NULL,
			entry bytea NOT NULL,
			result bytea,
			PRIMARY KEY (trace_id, seq))`,
		`CREATE INDEX IF NOT EXISTS ` + s.traces + `_open ON ` + s.traces +
			` (trace_id) WHERE state NOT IN ('COMPLETED', 'FAILED', 'DENIED')`,
	} {
		if _, err := s.db.Exec(ctx, q); err != nil {
			return fail("migrate", err)
		}
	}
	return nil
}

// Append implements mcp.TraceStore.
func (s *TraceStore) Append(ctx context.Context, rec mcp.TraceRecord) error {
	if !mcp.ValidTraceID(rec.TraceID) || rec.Seq < 1 {
		return contracts.New(contracts.CodeInvalidInput, "mcp/postgres: bad governed trace record")
	}
	if len(rec.Entry)+len(rec.Result) > mcp.MaxTraceRecord {
		return contracts.New(contracts.CodeTGAEventTooLarge, "mcp/postgres: governed trace record too large")
	}
	var q string
	if rec.Seq == 1 {
		q = `WITH t AS (INSERT INTO ` + s.traces + ` (trace_id, scope, seq, state) VALUES ($1, NULLIF($6, ''), $2, $3)
			ON CONFLICT DO NOTHING RETURNING trace_id)
			INSERT INTO ` + s.events + ` (trace_id, seq, state, entry, result) SELECT $1, $2, $3, $4, $5 FROM t`
	} else {
		q = `WITH t AS (UPDATE ` + s.traces + ` SET seq = $2, state = $3, updated_at = now()
			WHERE trace_id = $1 AND seq = $2 - 1 AND $6 = '' RETURNING trace_id)
			INSERT INTO ` + s.events + ` (trace_id, seq, state, entry, result) SELECT $1, $2, $3, $4, $5 FROM t`
	}
	tag, err := s.db.Exec(ctx, q, rec.TraceID, rec.Seq, rec.State, []byte(rec.Entry), rec.Result, rec.Scope)
	if err != nil {
		return fail("append", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if rec.Seq > 1 {
		var n int
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM `+s.traces+` WHERE trace_id = $1`, rec.TraceID).Scan(&n); err != nil {
			return fail("append", err)
		}
		if n == 0 {
			return mcp.ErrTraceNotFound
		}
	}
	return mcp.ErrTraceConflict
}

// Load implements mcp.TraceStore.
func (s *TraceStore) Load(ctx context.Context, traceID string) ([]mcp.TraceRecord, error) {
	rows, err := s.db.Query(ctx, `SELECT e.seq, e.state, e.entry, e.result, CASE WHEN e.seq = 1 THEN coalesce(t.scope, '') ELSE '' END
		FROM `+s.events+` e JOIN `+s.traces+` t USING (trace_id) WHERE e.trace_id = $1 ORDER BY e.seq`, traceID)
	if err != nil {
		return nil, fail("load", err)
	}
	defer rows.Close()
	var out []mcp.TraceRecord
	for rows.Next() {
		r := mcp.TraceRecord{TraceID: traceID}
		var entry []byte
		if err := rows.Scan(&r.Seq, &r.State, &entry, &r.Result, &r.Scope); err != nil {
			return nil, fail("load", err)
		}
		r.Entry = entry
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("load", err)
	}
	if len(out) == 0 {
		return nil, mcp.ErrTraceNotFound
	}
	return out, nil
}

// ByScope implements mcp.TraceStore.
func (s *TraceStore) ByScope(ctx context.Context, scope string) (string, error) {
	var id string
	err := s.db.QueryRow(ctx, `SELECT trace_id FROM `+s.traces+` WHERE scope = $1`, scope).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", mcp.ErrTraceNotFound
	}
	if err != nil {
		return "", fail("by scope", err)
	}
	return id, nil
}

// Open implements mcp.TraceStore.
func (s *TraceStore) Open(ctx context.Context, state, after string, limit int) ([]mcp.TraceSummary, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	rows, err := s.db.Query(ctx, `SELECT trace_id, state, seq, updated_at FROM `+s.traces+`
		WHERE state NOT IN ('COMPLETED', 'FAILED', 'DENIED') AND ($1 = '' OR state = $1) AND trace_id > $2
		ORDER BY trace_id LIMIT $3`, state, after, limit)
	if err != nil {
		return nil, fail("open", err)
	}
	defer rows.Close()
	var out []mcp.TraceSummary
	for rows.Next() {
		var t mcp.TraceSummary
		var at time.Time
		if err := rows.Scan(&t.TraceID, &t.State, &t.Seq, &at); err != nil {
			return nil, fail("open", err)
		}
		t.UpdatedAt = at.UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("open", err)
	}
	return out, nil
}
