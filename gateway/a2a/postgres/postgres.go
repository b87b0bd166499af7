// Package postgres is an a2a.TaskStore on PostgreSQL (pgx).
//
// One table, <prefix>a2a_tasks: the task's id, owner, context, state and
// version as columns (for filters and compare-and-set) and the rest of
// the task as a JSON document. An update is one conditional UPDATE
// (WHERE version = new − 1), so concurrent writers of one version cannot
// both win, across processes. Tasks survive restarts: a server that
// restarts on the same table serves GetTask, ListTasks and SubscribeToTask
// on every task it stored.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
)

// DB is the part of pgx a TaskStore uses; *pgxpool.Pool and *pgx.Conn
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

// ReadFunc runs a read-only fn on a Querier of its choice (a read replica,
// or the primary) and may call it twice; gateway/pgsplit's DB.Read and
// DB.ReadIfAllowed have this shape.
type ReadFunc func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error

// Config configures a TaskStore.
type Config struct {
	// DB is the connection pool. Required.
	DB DB
	// Read, when set, runs the listings: the relay Store's ListSessions,
	// ListGroups and Events, and the TaskStore's ListTasks. Everything a
	// relay or task decision reads (GetSession, GetGroup, GetTask, the
	// frames, push configurations, and every read inside an update) always
	// uses DB. Nil runs the listings on DB.
	Read ReadFunc
	// TablePrefix is prepended to the table name. If empty, "talos_". It
	// must match [a-z_][a-z0-9_]{0,40}.
	TablePrefix string
}

// TaskStore is an a2a.TaskStore on PostgreSQL.
type TaskStore struct {
	db    DB
	read  ReadFunc
	table string
}

// readFunc returns cfg.Read, or a ReadFunc over cfg.DB.
func readFunc(cfg Config) ReadFunc {
	if cfg.Read != nil {
		return cfg.Read
	}
	return func(ctx context.Context, fn func(ctx context.Context, q Querier) error) error { return fn(ctx, cfg.DB) }
}

var _ a2a.TaskStore = (*TaskStore)(nil)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a TaskStore. Call Migrate once before use.
func New(cfg Config) (*TaskStore, error) {
	if cfg.DB == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a/postgres: Config.DB is required")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a/postgres: invalid TablePrefix")
	}
	return &TaskStore{db: cfg.DB, read: readFunc(cfg), table: cfg.TablePrefix + "a2a_tasks"}, nil
}

// Migrate creates the tables (tasks, and push configurations in
// <prefix>a2a_tasks_push) and the index if they do not exist.
func (s *TaskStore) Migrate(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + s.table + ` (
			id text PRIMARY KEY, owner text NOT NULL, context_id text NOT NULL, state text NOT NULL,
			version bigint NOT NULL, doc bytea NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + s.table + `_owner ON ` + s.table + ` (owner, id)`,
		`CREATE TABLE IF NOT EXISTS ` + s.table + `_push (
			task_id text NOT NULL, id text NOT NULL, seq bigserial, doc bytea NOT NULL, PRIMARY KEY (task_id, id))`,
	} {
		if _, err := s.db.Exec(ctx, q); err != nil {
			return contracts.Wrap(contracts.CodeInternal, "a2a/postgres: migrate", err)
		}
	}
	return nil
}

// doc is the stored JSON of the fields without their own column.
type doc struct {
	Status    a2a.TaskStatus `json:"status"`
	History   []a2a.Message  `json:"history,omitempty"`
	Artifacts []a2a.Artifact `json:"artifacts,omitempty"`
	RequestID string         `json:"requestId,omitempty"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
}

func encode(t *a2a.Task) ([]byte, error) {
	b, err := json.Marshal(doc{Status: t.Status, History: t.History, Artifacts: t.Artifacts, RequestID: t.RequestID, Created: t.Created, Updated: t.Updated})
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "a2a/postgres: task unencodable", err)
	}
	return b, nil
}

func decode(id, owner, ctxID string, version int64, raw []byte) (*a2a.Task, error) {
	var d doc
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "a2a/postgres: stored task unreadable", err)
	}
	return &a2a.Task{ID: id, Owner: owner, ContextID: ctxID, Version: version, Status: d.Status, History: d.History,
		Artifacts: d.Artifacts, RequestID: d.RequestID, Created: d.Created, Updated: d.Updated}, nil
}

func dbErr(err error) error {
	return contracts.Wrap(contracts.CodeInternal, "a2a/postgres: query failed", err)
}

// CreateTask implements a2a.TaskStore.
func (s *TaskStore) CreateTask(ctx context.Context, t *a2a.Task) error {
	if t.Version != 1 {
		return contracts.New(contracts.CodeInvalidInput, "a2a/postgres: a new task has Version 1")
	}
	b, err := encode(t)
	if err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, `INSERT INTO `+s.table+` (id, owner, context_id, state, version, doc) VALUES ($1,$2,$3,$4,1,$5) ON CONFLICT (id) DO NOTHING`,
		t.ID, t.Owner, t.ContextID, string(t.Status.State), b)
	if err != nil {
		return dbErr(err)
	}
	if tag.RowsAffected() == 0 {
		return a2a.ErrVersionConflict
	}
	return nil
}

// GetTask implements a2a.TaskStore.
func (s *TaskStore) GetTask(ctx context.Context, id string) (*a2a.Task, error) {
	var owner, ctxID string
	var version int64
	var raw []byte
	err := s.db.QueryRow(ctx, `SELECT owner, context_id, version, doc FROM `+s.table+` WHERE id = $1`, id).Scan(&owner, &ctxID, &version, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, a2a.ErrTaskNotFound
	}
	if err != nil {
		return nil, dbErr(err)
	}
	return decode(id, owner, ctxID, version, raw)
}

// UpdateTask implements a2a.TaskStore.
func (s *TaskStore) UpdateTask(ctx context.Context, t *a2a.Task) error {
	b, err := encode(t)
	if err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, `UPDATE `+s.table+` SET state = $2, version = $3, doc = $4, context_id = $5 WHERE id = $1 AND version = $3 - 1`,
		t.ID, string(t.Status.State), t.Version, b, t.ContextID)
	if err != nil {
		return dbErr(err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	if err := s.db.QueryRow(ctx, `SELECT 1 FROM `+s.table+` WHERE id = $1`, t.ID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
		return a2a.ErrTaskNotFound
	} else if err != nil {
		return dbErr(err)
	}
	return a2a.ErrVersionConflict
}

// ListTasks implements a2a.TaskStore.
func (s *TaskStore) ListTasks(ctx context.Context, f a2a.TaskFilter) ([]*a2a.Task, int, error) {
	if f.Limit < 1 {
		return nil, 0, contracts.New(contracts.CodeInvalidInput, "a2a/postgres: ListTasks limit must be at least 1")
	}
	where := ` WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR context_id = $2) AND ($3 = '' OR state = $3)`
	type row struct {
		id, owner, ctxID string
		version          int64
		raw              []byte
	}
	var total int
	var got []row
	err := s.read(ctx, func(ctx context.Context, db Querier) error {
		got = nil
		if err := db.QueryRow(ctx, `SELECT count(*) FROM `+s.table+where, f.Owner, f.ContextID, string(f.State)).Scan(&total); err != nil {
			return err
		}
		rows, err := db.Query(ctx, `SELECT id, owner, context_id, version, doc FROM `+s.table+where+` AND id COLLATE "C" > $4 ORDER BY id COLLATE "C" LIMIT $5`,
			f.Owner, f.ContextID, string(f.State), f.After, f.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.owner, &r.ctxID, &r.version, &r.raw); err != nil {
				return err
			}
			got = append(got, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, dbErr(err)
	}
	var out []*a2a.Task
	for _, r := range got {
		t, err := decode(r.id, r.owner, r.ctxID, r.version, r.raw)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	return out, total, nil
}
