// Package pgsplit splits PostgreSQL reads and writes between a primary and an
// optional replica, with a circuit breaker in front of the replica.
//
// # Model
//
// Writes ([DB.Exec], [DB.Primary]) always go to the primary. Reads ([DB.Read],
// [DB.ReadRow]) go to the replica while its [Breaker] is closed. When the
// replica fails at the connection level the read is retried on the primary in
// the same call, and the failure is counted; FailureThreshold consecutive
// failures open the breaker, and reads then go straight to the primary. After
// OpenDuration the breaker is half-open: HalfOpenProbes reads go to the
// replica as probes, and if they all succeed it closes again; a failed probe
// opens it for another OpenDuration.
//
// # Read-your-writes
//
// A replica lags behind the primary. So that the caller that just wrote
// sees its write, a request names its caller ([WithCaller]: a principal,
// an admin session, any stable key) and, after its write has committed,
// calls [DB.Wrote]: that reads the primary's WAL position
// (pg_current_wal_lsn()) and keeps it as the caller's mark. A read for a
// caller with a mark first asks the replica, on the connection the read
// then uses, how far it has replayed (pg_last_wal_replay_lsn()); at or past
// the mark the replica serves the read (and the mark is forgotten), behind
// it the read goes to the primary ([Stats].LaggingReads). No replica read
// is older than the caller's own last write. A caller without a mark reads
// the replica as it is: at most the replica's lag behind the primary.
//
// The marks are bounded ([Config.MaxWriteMarks]); when full they are folded
// into one position every replica read waits for, which is never staler.
// A write whose position cannot be read marks its caller as unknown: its
// next read goes to the primary, which supplies a later position.
//
// The marks are per process unless [DB.ShareMarks] names a table on the
// primary: then [DB.Wrote] also upserts the caller's mark there (in the same
// statement that reads the WAL position), and a read for a named caller
// looks its mark up there (one primary-key read on the primary), so a caller
// that writes through one process (a server replica) and reads through
// another still never reads the replica behind its write. A lookup that
// fails sends the read to the primary. Marks the replica has replayed are
// deleted now and then.
//
// # What reads the replica
//
// [DB.Read] reads the replica for anyone; [DB.ReadIfAllowed] only within a
// context from [WithReplicaReads], and the primary otherwise. Stores whose
// reads serve both listings and decisions take ReadIfAllowed, and only the
// listing requests (admin lists, audit searches, config lists) are marked:
// decisions (authorization, revocation checks, nonces, admin identity and
// session lookups, budget reads that decide) read the primary.
//
// # Security properties
//
// Connection strings never appear in errors returned by [Connect]. A replica
// that is down never makes a read fail while the primary answers.
//
// # Concurrency
//
// [DB] and [Breaker] are safe for concurrent use.
//
// # Compatibility
//
// Part of the gateway module (github.com/talosgo/talos/gateway), which
// follows the library's versioning; examples/server uses it.
package pgsplit
