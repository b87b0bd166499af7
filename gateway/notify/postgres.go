package notify

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
)

// Postgres is a [Transport] on PostgreSQL: the versions are rows of
// <prefix>notify_versions and messages are NOTIFY on the channel
// <prefix>notify, received on a connection taken out of the pool (and
// closed, not returned, when the subscription ends).
type Postgres struct {
	db      *pgxpool.Pool
	table   string // quoted
	channel string // unquoted, as pg_notify takes it
}

var _ Transport = (*Postgres)(nil)

// NewPostgres returns the transport on pool db with a table prefix of
// lower-case letters, digits and underscores ("" is "talos_").
func NewPostgres(db *pgxpool.Pool, prefix string) (*Postgres, error) {
	if prefix == "" {
		prefix = "talos_"
	}
	if db == nil || strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || len(prefix) > 40 {
		return nil, errors.New("notify: a pool and a prefix of [a-z0-9_], at most 40 bytes, are required")
	}
	return &Postgres{
		db: db, channel: prefix + "notify",
		table: pgx.Identifier{prefix + "notify_versions"}.Sanitize(),
	}, nil
}

func pgErr(what string, err error) error {
	return contracts.Wrap(contracts.CodeInternal, "notify: postgres "+what+" failed", err)
}

// Migrate creates the version table if it does not exist (serialized by
// an advisory lock, so replicas starting together do not collide).
func (p *Postgres) Migrate(ctx context.Context) error {
	tx, err := p.db.Begin(ctx)
	if err != nil {
		return pgErr("migrate", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, p.table); err != nil {
		return pgErr("migrate", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.table+` (kind text PRIMARY KEY, version bigint NOT NULL)`); err != nil {
		return pgErr("migrate", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return pgErr("migrate", err)
	}
	return nil
}

// Publish implements [Transport]: one statement bumps the row and
// notifies; PostgreSQL delivers the notification when it commits.
func (p *Postgres) Publish(ctx context.Context, kind string) (int64, error) {
	var v int64
	err := p.db.QueryRow(ctx, `WITH v AS (
		INSERT INTO `+p.table+` AS t (kind, version) VALUES ($1, 1)
		ON CONFLICT (kind) DO UPDATE SET version = t.version + 1
		RETURNING version)
		SELECT version FROM v, LATERAL pg_notify($2, 'v1 ' || $1 || ' ' || version::text)`,
		kind, p.channel).Scan(&v)
	if err != nil {
		return 0, pgErr("publish", err)
	}
	return v, nil
}

// Versions implements [Transport] with one SELECT.
func (p *Postgres) Versions(ctx context.Context) (map[string]int64, error) {
	rows, err := p.db.Query(ctx, `SELECT kind, version FROM `+p.table)
	if err != nil {
		return nil, pgErr("version read", err)
	}
	out := map[string]int64{}
	var kind string
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &v}, func() error {
		if v > 0 && ValidKind(kind) {
			out[kind] = v
		}
		return nil
	})
	if err != nil {
		return nil, pgErr("version read", err)
	}
	return out, nil
}

// Listen implements [Transport] on a connection of its own.
func (p *Postgres) Listen(ctx context.Context, ready func(), deliver func(Message)) error {
	pc, err := p.db.Acquire(ctx)
	if err != nil {
		return pgErr("listen connection", err)
	}
	conn := pc.Hijack() // ours: closed below, never back in the pool
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		return pgErr("listen", err)
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return pgErr("notification wait", err)
		}
		if n.Channel != p.channel {
			continue
		}
		if m, err := ParseMessage(n.Payload); err == nil {
			deliver(m)
		}
	}
}
