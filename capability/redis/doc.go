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
// soon as the message arrives. Redis pub/sub is at-most-once, so the store
// never trusts a quiet channel: the feed counts as live only between a
// subscription confirmation and the next error; every (re)subscription
// makes the Verifier drop its whole cache (revocations published while it
// was disconnected may have been missed); and the subscriber pings the
// server every PingInterval ([DefaultPingInterval]), declaring the feed
// dead when a ping goes unanswered for another interval. While the feed is
// not live, the Verifier asks Redis on every request.
//
// # Security properties
//
//   - Fail closed: every Redis failure (connection, timeout, script error,
//     cancelled context) is returned as a *contracts.Error of code
//     INTERNAL, retryable, wrapping capability.ErrStore and the client
//     error; a Verifier turns it into a STORE_UNAVAILABLE denial. There is
//     no fail-open mode.
//   - A quiet or broken subscription never keeps a revoked chain alive:
//     the worst case of a lost feed is a slower decision (one EXISTS per
//     request), never a revoked token allowed. The one window is delivery
//     delay: a message arrives at most one network delay after Revoke
//     returns, and until then another process may still allow the token
//     from its cache.
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
// connection and one goroutine, ended by Verifier.Close.
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
