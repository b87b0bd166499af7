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
