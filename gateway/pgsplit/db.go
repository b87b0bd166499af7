package pgsplit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what a read function may use: the methods shared by
// *pgxpool.Pool, *pgxpool.Conn and pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = pgx.Tx(nil)
	_ Querier = (*pgxpool.Conn)(nil)
)

// Config configures a [DB].
type Config struct {
	// Primary receives every write, and the reads while the replica is
	// absent or failing. Required.
	Primary *pgxpool.Pool
	// Replica, if set, receives reads while its breaker lets them through.
	Replica *pgxpool.Pool
	// Breaker configures the replica's circuit breaker.
	Breaker BreakerConfig
	// MaxWriteMarks bounds the callers whose last write position is kept
	// for read-your-writes (see [DB.Wrote]); past it the marks are folded
	// into one position every replica read waits for. If zero,
	// DefaultMaxWriteMarks is used.
	MaxWriteMarks int
}

// A DB splits reads and writes between a PostgreSQL primary and an optional
// replica. It is safe for concurrent use.
type DB struct {
	primary *pgxpool.Pool
	replica *pgxpool.Pool
	breaker *Breaker

	marks       marks
	sharedMarks atomic.Pointer[string] // the quoted marks table (ShareMarks), or nil
	sweeps      atomic.Int64

	replicaReads  atomic.Int64
	primaryReads  atomic.Int64
	fallbackReads atomic.Int64
	laggingReads  atomic.Int64
}

// New returns a DB over the pools in cfg. It does not take ownership of the
// pools unless the caller then uses [DB.Close].
func New(cfg Config) (*DB, error) {
	if cfg.Primary == nil {
		return nil, errors.New("pgsplit: Config.Primary is required")
	}
	if cfg.MaxWriteMarks <= 0 {
		cfg.MaxWriteMarks = DefaultMaxWriteMarks
	}
	return &DB{primary: cfg.Primary, replica: cfg.Replica, breaker: NewBreaker(cfg.Breaker),
		marks: marks{max: cfg.MaxWriteMarks, byKey: map[string]int64{}}}, nil
}

// Connect connects pools for the primary DSN and, when replicaDSN is not empty,
// the replica DSN, and returns a DB that owns them. It does not wait for the
// servers: pgxpool connects lazily, so a replica that is down at start only
// trips the breaker.
func Connect(ctx context.Context, primaryDSN, replicaDSN string, bc BreakerConfig) (*DB, error) {
	p, err := pgxpool.New(ctx, primaryDSN)
	if err != nil {
		return nil, fmt.Errorf("pgsplit: primary: %w", redactDSNError(err))
	}
	var r *pgxpool.Pool
	if replicaDSN != "" {
		r, err = pgxpool.New(ctx, replicaDSN)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("pgsplit: replica: %w", redactDSNError(err))
		}
	}
	return New(Config{Primary: p, Replica: r, Breaker: bc})
}

// redactDSNError drops the text of a DSN parse error, which can quote the
// DSN and its password.
func redactDSNError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// Primary returns the primary pool, for writes and transactions.
func (db *DB) Primary() *pgxpool.Pool { return db.primary }

// Replica returns the replica pool, or nil.
func (db *DB) Replica() *pgxpool.Pool { return db.replica }

// Breaker returns the replica's circuit breaker.
func (db *DB) Breaker() *Breaker { return db.breaker }

// Exec runs a statement on the primary.
func (db *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return db.primary.Exec(ctx, sql, args...)
}

// Read runs fn against the replica when one is configured, its breaker is
// closed (or admits a half-open probe), and it has replayed the writes of
// the caller named in ctx (see [WithCaller] and [DB.Wrote]); against the
// primary otherwise. A caller with no recorded write reads the replica as it
// is.
//
// When the replica fails at the connection level (it cannot be reached, the
// connection breaks), the failure is recorded in the breaker and fn runs
// again on the primary, so the caller sees no error. SQL errors (a
// *pgconn.PgError, pgx.ErrNoRows) are returned as they are and count as the
// replica working; an error after the caller's context ended is returned
// and not counted. A replica behind the caller's writes is working: the read
// goes to the primary and counts as lagging.
//
// fn must be read-only and safe to run twice.
func (db *DB) Read(ctx context.Context, fn func(ctx context.Context, q Querier) error) error {
	caller := CallerFrom(ctx)
	need := db.marks.need(caller)
	if db.replica != nil && need != unknownLSN {
		if done, ok := db.breaker.Allow(); ok {
			// Another process may have recorded a later write of this
			// caller; if that cannot be known, only the primary is sure
			// to hold the write.
			shared, err := db.sharedMark(ctx, caller)
			if err == nil {
				err = db.readReplica(ctx, caller, max(need, shared), fn)
			} else {
				err = errLagging
			}
			switch {
			case errors.Is(err, errLagging):
				done(Success)
				db.laggingReads.Add(1)
			case err != nil && ctx.Err() != nil:
				done(Ignored)
				return err
			case err == nil || !isConnError(err):
				done(Success)
				db.replicaReads.Add(1)
				return err
			default:
				done(Failure)
				db.fallbackReads.Add(1)
			}
		}
	}
	db.primaryReads.Add(1)
	if need == unknownLSN {
		// A write at an unknown position: the primary's position now is at
		// least as late, and the replica can serve the caller once past it.
		if lsn, err := db.primaryLSN(ctx); err == nil {
			db.marks.resolve(caller, lsn)
		}
	}
	return fn(ctx, db.primary)
}

// errLagging reports a replica that has not replayed the caller's writes.
var errLagging = errors.New("pgsplit: replica behind the caller's writes")

// readReplica runs fn on the replica. With need > 0 it first checks, on the
// connection fn then uses, that the replica has replayed WAL up to need: a
// later replay only adds to what fn sees.
func (db *DB) readReplica(ctx context.Context, caller string, need int64, fn func(ctx context.Context, q Querier) error) error {
	if need <= 0 {
		return fn(ctx, db.replica)
	}
	conn, err := db.replica.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// NULL (not a standby): nothing proves it has the write.
	var replay *int64
	if err := conn.QueryRow(ctx, `SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&replay); err != nil {
		return err
	}
	if replay == nil || *replay < need {
		return errLagging
	}
	db.marks.replayed(caller, *replay)
	db.sweepShared(ctx, *replay)
	return fn(ctx, conn)
}

// ReadRow runs one single-row query through [DB.Read] and scans it into dest.
func (db *DB) ReadRow(ctx context.Context, dest []any, sql string, args ...any) error {
	return db.Read(ctx, func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, sql, args...).Scan(dest...)
	})
}

// PingPrimary checks that the primary answers.
func (db *DB) PingPrimary(ctx context.Context) error { return db.primary.Ping(ctx) }

// PingReplica checks that the replica answers (nil when none is configured).
// It bypasses the breaker, and a success or failure is not recorded in it.
func (db *DB) PingReplica(ctx context.Context) error {
	if db.replica == nil {
		return nil
	}
	return db.replica.Ping(ctx)
}

// Stats counts reads by destination since the DB was created.
type Stats struct {
	ReplicaReads  int64 // reads answered by the replica
	PrimaryReads  int64 // reads answered by the primary (including fallbacks)
	FallbackReads int64 // reads that failed on the replica and were retried on the primary
	LaggingReads  int64 // reads sent to the primary because the replica had not replayed the caller's writes (or that was not known)
	PendingMarks  int   // callers whose last write the replica has not been seen to replay
	BreakerState  State
}

// Stats returns read counters and the breaker state.
func (db *DB) Stats() Stats {
	return Stats{
		ReplicaReads:  db.replicaReads.Load(),
		PrimaryReads:  db.primaryReads.Load(),
		FallbackReads: db.fallbackReads.Load(),
		LaggingReads:  db.laggingReads.Load(),
		PendingMarks:  db.marks.size(),
		BreakerState:  db.breaker.State(),
	}
}

// Close closes both pools.
func (db *DB) Close() {
	if db.replica != nil {
		db.replica.Close()
	}
	db.primary.Close()
}

// isConnError reports whether err means the server could not be used (as
// opposed to the query failing on a working server).
func isConnError(err error) bool {
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, pgx.ErrTooManyRows) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 (connection exception), 57P (operator intervention:
		// shutdown, crash) and 53 (insufficient resources) mean the server
		// is not usable; everything else is about the query.
		c := pe.Code
		return len(c) >= 2 && (c[:2] == "08" || c[:2] == "53" || (len(c) >= 3 && c[:3] == "57P"))
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// Unknown error kinds from the driver (closed connection, protocol
	// errors) are treated as the server failing: the primary answers instead.
	var scanErr pgx.ScanArgError
	return !errors.As(err, &scanErr)
}
