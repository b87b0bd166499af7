// Package notify propagates "documents of kind K changed" between the
// replicas of a gateway that share a store, so each one reloads what
// another one edited.
//
// # Model
//
// A change is a per-kind version counter in the shared store, bumped by
// [Bus.Publish], and a message "kind K is now at version V" sent to every
// subscriber. Two transports are provided: [Redis] (HINCRBY on one hash and
// PUBLISH, in one script; any go-redis client, a Redis Cluster too) and
// [Postgres] (an upsert of a version row and pg_notify in one statement,
// received with LISTEN on a dedicated connection).
//
// A [Bus] runs the subscription (made again after a lost connection, with
// an immediate version read on every new subscription) and reads every
// kind's version each Config.Poll (one second by default: one small HGETALL
// or SELECT). A message lost while a connection was down, or never sent
// because a publisher died between the bump and the send, is therefore
// caught by the next read: a change reaches every running replica within
// about the message latency, and at worst within Poll plus the reload.
// Config.Apply runs once per observed advance of a kind, one call at a
// time; a failed Apply is retried on the next read. On start every kind
// with a stored version is applied once.
//
// # Security properties
//
// Messages carry only a kind and a number. A message from the transport is
// parsed strictly ([ParseMessage]: TALOS_INVALID_INPUT for anything else)
// and dropped when malformed; a forged message can at most cause a reload.
// The version read is the source of truth, not the message.
//
// # Concurrency
//
// A Bus and the transports are safe for concurrent use. Apply is never
// called concurrently with itself.
//
// # Compatibility
//
// The message text is "v1 <kind> <version>". The Redis layout is one hash
// (prefix + "versions", field = kind) and one channel (prefix +
// "changes"); the PostgreSQL layout is the table <prefix>notify_versions
// (kind text primary key, version bigint) and the channel
// <prefix>notify.
package notify
