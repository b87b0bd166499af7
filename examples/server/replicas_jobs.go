package main

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Jobs that run once per interval cluster-wide (issue 15 item 4): each
// replica ticks, and a run happens only under a PostgreSQL
// transaction-scoped advisory lock, when the job's last run recorded in
// <prefix>jobs (by the database's clock) is at least an interval old.

// jobs runs periodic jobs once per interval across the replicas sharing
// one PostgreSQL database.
type jobs struct {
	db    *pgxpool.Pool
	table string // quoted
}

// newJobs opens the job table (created if missing, serialized by an
// advisory lock so replicas starting together do not collide).
func newJobs(ctx context.Context, db *pgxpool.Pool, prefix string) (*jobs, error) {
	j := &jobs{db: db, table: pgx.Identifier{prefix + "jobs"}.Sanitize()}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, j.table); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+j.table+` (name text PRIMARY KEY, last_run timestamptz NOT NULL)`); err != nil {
		return nil, err
	}
	return j, tx.Commit(ctx)
}

// runIfDue runs fn when no other replica is running job and job's last
// run is at least interval old (or it never ran), and records the run
// when fn succeeds. ran reports whether fn ran; at is the run's time by
// the database's clock (the start of the transaction), so two recorded
// runs of one job are at least interval apart.
func (j *jobs) runIfDue(ctx context.Context, job string, interval time.Duration, fn func(context.Context) error) (ran bool, at time.Time, err error) {
	tx, err := j.db.Begin(ctx)
	if err != nil {
		return false, time.Time{}, err
	}
	defer tx.Rollback(ctx)
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, j.table+"/"+job).Scan(&locked); err != nil {
		return false, time.Time{}, err
	}
	if !locked {
		return false, time.Time{}, nil // another replica is running it
	}
	var due bool
	err = tx.QueryRow(ctx, `SELECT now(), coalesce((SELECT last_run <= now() - make_interval(secs => $2)
		FROM `+j.table+` WHERE name = $1), true)`, job, interval.Seconds()).Scan(&at, &due)
	if err != nil {
		return false, time.Time{}, err
	}
	if !due {
		return false, time.Time{}, nil
	}
	if err := fn(ctx); err != nil {
		return false, time.Time{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+j.table+` (name, last_run) VALUES ($1, now())
		ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run`, job); err != nil {
		return true, at, err
	}
	return true, at, tx.Commit(ctx)
}

// every returns a worker that calls runIfDue for job every quarter
// interval (so runs come between interval and 1.25 × interval apart
// while any replica is up) until its context ends. Failures go to onErr
// and are retried at the next tick.
func (j *jobs) every(job string, interval time.Duration, fn func(context.Context) error, onErr func(error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(max(interval/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if _, _, err := j.runIfDue(ctx, job, interval, fn); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) && onErr != nil {
				onErr(err)
			}
		}
	}
}
