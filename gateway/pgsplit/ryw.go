package pgsplit

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
)

// callerKey is the context key of the caller a read or write is made for.
type callerKey struct{}

// WithCaller returns a copy of ctx that names the caller (a principal, an
// admin, any stable key) its reads and writes are made for. [DB.Wrote]
// records a write against it, and [DB.Read] serves it from the replica only
// once the replica has replayed that write. An empty caller leaves ctx as it
// is.
func WithCaller(ctx context.Context, caller string) context.Context {
	if caller == "" {
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerFrom returns the caller named by [WithCaller], or "".
func CallerFrom(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(string)
	return c
}

// DefaultMaxWriteMarks is the default of [Config.MaxWriteMarks].
const DefaultMaxWriteMarks = 10000

// sweepMarks is the number of pending marks past which a replica check
// forgets every mark it covers, not only its caller's.
const sweepMarks = 64

// marks holds, per caller, the primary's WAL position after the caller's
// last write, until the replica is seen past it. When a mark has to be
// dropped to stay within max, floor takes its position instead: every
// caller's replica reads then wait for it, which is never staler than the
// dropped mark.
type marks struct {
	mu    sync.Mutex
	max   int
	byKey map[string]int64
	floor int64 // a position every replica read must have replayed
}

func (m *marks) record(caller string, lsn int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.byKey[caller]; ok {
		if old != unknownLSN {
			lsn = max(old, lsn)
		}
		m.byKey[caller] = lsn
		return
	}
	if len(m.byKey) >= m.max {
		// Fold every mark into the floor: bounded memory, and no read is
		// served staler than the writes forgotten.
		for k, v := range m.byKey {
			m.floor = max(m.floor, v)
			delete(m.byKey, k)
		}
	}
	m.byKey[caller] = lsn
}

// need returns the WAL position the replica must have replayed to serve
// caller (0: any).
func (m *marks) need(caller string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.floor
	if caller != "" {
		n = max(n, m.byKey[caller])
	}
	return n
}

// replayed forgets the marks at or below lsn, which the replica has
// replayed: reads for those callers need no check any more.
func (m *marks) replayed(caller string, lsn int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.byKey[caller]; ok && v <= lsn {
		delete(m.byKey, caller)
	}
	if len(m.byKey) > sweepMarks {
		// Callers that wrote and never read again (a signed request
		// names a new caller each time): forget what lsn covers.
		for k, v := range m.byKey {
			if v <= lsn {
				delete(m.byKey, k)
			}
		}
	}
	if m.floor <= lsn {
		m.floor = 0
	}
}

// resolve replaces unknown positions (caller's, and the floor) by lsn, a
// primary position read after them.
func (m *marks) resolve(caller string, lsn int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.byKey[caller]; ok && v == unknownLSN {
		m.byKey[caller] = lsn
	}
	if m.floor == unknownLSN {
		m.floor = lsn
	}
}

// size returns the number of callers with a pending mark.
func (m *marks) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byKey)
}

// Wrote records that the caller named in ctx (see [WithCaller]) has written
// to the primary: it reads the primary's current WAL position, and until the
// replica has replayed past it, that caller's reads go to the primary. Call
// it after the write has committed (for an HTTP API: after the handler of a
// mutating request returned). Without a caller in ctx, or without a
// replica, it does nothing.
//
// If the position cannot be read, Wrote returns the error and records the
// write as at an unknown position: the caller's next read goes to the
// primary, which then supplies a position at least as late as the write.
func (db *DB) Wrote(ctx context.Context) error {
	caller := CallerFrom(ctx)
	if db.replica == nil || caller == "" {
		return nil
	}
	var lsn int64
	var err error
	if t := db.sharedMarks.Load(); t != nil {
		err = db.primary.QueryRow(ctx, `INSERT INTO `+*t+` AS m (caller, lsn) VALUES ($1, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint)
			ON CONFLICT (caller) DO UPDATE SET lsn = GREATEST(m.lsn, EXCLUDED.lsn) RETURNING lsn`, caller).Scan(&lsn)
	} else {
		lsn, err = db.primaryLSN(ctx)
	}
	if err != nil {
		db.marks.record(caller, unknownLSN)
		return err
	}
	db.marks.record(caller, lsn)
	return nil
}

// ShareMarks keeps the callers' write marks in table on the primary too
// (created if missing: caller text primary key, lsn bigint), so that
// read-your-writes holds across processes: a caller that wrote through one
// process and reads through another is served by the replica only once it
// has replayed that write. Every read for a named caller then also looks
// its mark up on the primary (one primary-key read); when that lookup
// fails, the read goes to the primary. Rows the replica has replayed are
// deleted now and then. Call it once, before serving; without a replica it
// does nothing.
func (db *DB) ShareMarks(ctx context.Context, table string) error {
	if db.replica == nil {
		return nil
	}
	t := pgx.Identifier{table}.Sanitize()
	if _, err := db.primary.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (caller text PRIMARY KEY, lsn bigint NOT NULL)`); err != nil {
		return err
	}
	db.sharedMarks.Store(&t)
	return nil
}

// sharedMark returns caller's mark in the shared table (0 without one, or
// without ShareMarks).
func (db *DB) sharedMark(ctx context.Context, caller string) (int64, error) {
	t := db.sharedMarks.Load()
	if t == nil || caller == "" {
		return 0, nil
	}
	var lsn int64
	err := db.primary.QueryRow(ctx, `SELECT lsn FROM `+*t+` WHERE caller = $1`, caller).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return lsn, err
}

// sweepEvery is how many replica checks pass between two deletions of the
// shared marks the replica has replayed.
const sweepEvery = 64

// sweepShared deletes, every sweepEvery calls, the shared marks at or below
// replay: the replica serves those callers anyway. A failure only leaves
// rows for the next sweep.
func (db *DB) sweepShared(ctx context.Context, replay int64) {
	t := db.sharedMarks.Load()
	if t == nil || db.sweeps.Add(1)%sweepEvery != 0 {
		return
	}
	_, _ = db.primary.Exec(ctx, `DELETE FROM `+*t+` WHERE lsn <= $1`, replay)
}

// primaryLSN reads the primary's current WAL write position. Every
// transaction committed before the call (synchronous_commit on, the default:
// its commit record is flushed, hence written) ends at or before it.
func (db *DB) primaryLSN(ctx context.Context) (int64, error) {
	var lsn int64
	err := db.primary.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&lsn)
	return lsn, err
}

// unknownLSN marks a write whose position is not known: no replica position
// satisfies it. The next read for that caller, served by the primary,
// replaces it with the primary's position then (see marks.resolve).
const unknownLSN = int64(^uint64(0) >> 1)

// replicaOKKey is the context key of [WithReplicaReads].
type replicaOKKey struct{}

// WithReplicaReads returns a copy of ctx in which [DB.ReadIfAllowed] may
// read the replica. Set it for the requests whose reads may be as old as the
// replica (within read-your-writes): listings, searches, dashboards. Leave
// it out of decisions (authorization, revocation, nonces, budgets), which
// must read the primary.
func WithReplicaReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, replicaOKKey{}, true)
}

// ReplicaReadsAllowed reports whether ctx came from [WithReplicaReads].
func ReplicaReadsAllowed(ctx context.Context) bool {
	ok, _ := ctx.Value(replicaOKKey{}).(bool)
	return ok
}

// ReadIfAllowed is [DB.Read] when ctx allows replica reads (see
// [WithReplicaReads]), and fn on the primary otherwise. Stores whose reads
// serve both listings and decisions take it as their read function, so
// only the requests marked as listings leave the primary.
func (db *DB) ReadIfAllowed(ctx context.Context, fn func(ctx context.Context, q Querier) error) error {
	if !ReplicaReadsAllowed(ctx) {
		db.primaryReads.Add(1)
		return fn(ctx, db.primary)
	}
	return db.Read(ctx, fn)
}
