// Package redis implements the revocation and replay stores of package
// capability on Redis, shared by every process that points at one server.
//
// # Model
//
// A revocation is a key prefix+"rev:"+key (set with an expiry at the
// token's end of life, or without one) written by a Lua script that also
// PUBLISHes the key on the channel prefix+"revocations", in one atomic
// step. [RevocationStore.AnyRevoked] is one EXISTS over all keys of a
// chain: one round trip. [ReplayStore] is identity.NonceStore with SET NX
// PX: atomic set-if-absent with a TTL, under prefix+"nonce:"+key.
//
// # Cross-process revocation
//
// [RevocationStore] is a capability.RevocationWatcher: a Verifier using it
// subscribes to the channel and evicts a revoked chain from its cache as
// soon as the message arrives. Redis pub/sub is at-most-once and a TCP
// connection can stop forwarding without closing, so the store never
// trusts a quiet channel. The watcher subscribes to a heartbeat channel of
// its own as well and PUBLISHes a heartbeat on it, through the server,
// every Config.MaxStaleness/4 ([DefaultMaxStaleness] is 1 s). Redis
// delivers a subscriber's messages in the order it ran the PUBLISHes, so a
// heartbeat sent at time S that comes back proves that every revocation
// published before S has been delivered. The feed counts as live only
// while the latest heartbeat it received was sent less than MaxStaleness
// ago; every (re)subscription makes the Verifier drop its whole cache and
// waits for a heartbeat sent after it; a subscription without a fresh
// heartbeat for 2 × MaxStaleness is closed and made again. While the feed
// is not live, the Verifier asks Redis on every request.
//
// # Security properties
//
//   - Fail closed: every Redis failure (connection, timeout, script error,
//     cancelled context) is returned as a *contracts.Error of code
//     INTERNAL, retryable, wrapping capability.ErrStore and the client
//     error; a Verifier turns it into a STORE_UNAVAILABLE denial. There is
//     no fail-open mode.
//   - Bounded staleness: a revocation is enforced on every replica within
//     MaxStaleness of Revoke returning, or requests fail closed. At a time
//     t ≥ Revoke's return + MaxStaleness a replica serves a cached chain
//     only on a heartbeat sent after the revocation was published, which
//     arrived after the revocation did; otherwise it asks Redis, and if
//     Redis cannot answer (a partition, a dead server) it denies
//     (STORE_UNAVAILABLE). The clocks compared are each process's
//     monotonic clock, so wall-clock steps do not matter. The guarantee
//     needs one server ordering both PUBLISHes; on Redis Cluster that
//     server is the master of the prefix's hash-tag slot (see Redis
//     Cluster below).
//   - A quiet or broken subscription never keeps a revoked chain alive
//     beyond that bound: the worst case of a lost feed is a slower
//     decision (one EXISTS per request), never a revoked token allowed.
//   - A revocation only ever lengthens: revoking a key already revoked
//     keeps the later deadline, and a zero deadline revokes for good.
//   - Replay claims are atomic on the server (SET NX), so two processes
//     racing on one nonce cannot both win.
//   - Keys and channel hold capability hashes, token nonces and request
//     nonces: no secret is written to Redis or to an error message.
//
// # Redis Cluster
//
// Given a *goredis.ClusterClient, a RevocationStore uses sharded pub/sub
// (Redis 7 SPUBLISH and SSUBSCRIBE) instead of PUBLISH and SUBSCRIBE, and
// needs a hash tag in Config.Prefix (for example "{talos-capability}:"):
// every revocation key, the revocation channel and every heartbeat
// channel then hash to one slot, owned by one master. Classic PUBLISH on
// a cluster is broadcast over the cluster bus to every node, and a
// subscriber on node C receives the revocation (published by the key's
// master A, from inside the script) and its heartbeat (published on
// whichever node the client picked, B) through two different links with
// no order between them: a heartbeat could overtake the revocation it is
// meant to vouch for. With sharded pub/sub the revoke script, the
// heartbeats and the subscription all run on the one master of the slot
// (a shard channel's subscribers connect to the slot's owner, and its
// replicas get the messages in replication order), which is what the
// bounded-staleness argument needs; sharded messages also stay inside the
// shard instead of crossing the whole cluster bus. Without a hash tag on
// a cluster client every call of the store fails closed with a
// TALOS_INVALID_INPUT error (one EXISTS over keys in many slots would be
// refused anyway). A ReplayStore needs no hash tag: each Claim is one
// single-key SET NX, so untagged nonce keys spread over every shard; a
// tag would put them all on one.
//
// Failover: when the slot's master dies, its subscriptions break, so the
// feed stops being live at once and every request that the cache would
// have served asks Redis; while no master owns the slot those requests
// are denied (STORE_UNAVAILABLE) and Revoke fails. go-redis reloads its
// slot map on MOVED replies but not when a connection is refused, so on
// every failed call (and failed subscription) the stores ask a cluster
// client to reload it; once a replica has taken over, checks, revocations
// and the feed (a new subscription, which flushes the cache) resume on
// it. If the slot moves while the master lives (resharding, a manual
// failover) Redis ends the shard subscription with an SUNSUBSCRIBE: the
// feed is not live from that moment and subscribes again to the new
// owner. Redis replication is asynchronous: a revocation acknowledged by
// a master that dies before its replica received it is lost with it.
// Revoke again after a failover when that matters (min-replicas-to-write
// on the masters narrows the window; it does not close it).
//
// # Concurrency
//
// Both stores are safe for concurrent use by many goroutines and many
// processes. Each Verifier watching a RevocationStore holds one pub/sub
// connection and two goroutines (receiver and heartbeat, one PUBLISH every
// MaxStaleness/4), ended by Verifier.Close.
//
// # Compatibility
//
// The stores need Redis 2.6.12 or later (Lua scripting, SET NX PX, PTTL)
// or a compatible server (Valkey, KeyDB, miniredis in tests), through any
// go-redis v9 UniversalClient; on Redis Cluster, Redis 7 or later
// (sharded pub/sub) and a hash tag in Config.Prefix. The key layout (prefix +
// "rev:" + capability.HashKey or capability.NonceKey, prefix + "nonce:" +
// claim key) and the channel name are stable within v1: processes of
// different library versions may share a server.
package redis
