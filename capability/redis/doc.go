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
// every Options.MaxStaleness/4 ([DefaultMaxStaleness] is 1 s). Redis
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
//     needs one server ordering both PUBLISHes: on Redis Cluster, classic
//     pub/sub is forwarded between nodes without a global order, so point
//     the stores at one primary (or accept the bound as best effort).
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
// go-redis v9 UniversalClient. With Redis Cluster, give Options.Prefix a
// hash tag (for example "{talos-capability}:") so that the keys of one
// chain, checked by one EXISTS, share a slot. The key layout (prefix +
// "rev:" + capability.HashKey or capability.NonceKey, prefix + "nonce:" +
// claim key) and the channel name are stable within v1: processes of
// different library versions may share a server.
package redis
