// Package redis provides the budget back-ends on Redis: [Budget] (a
// budget.Budget) and [Rates] (a budget.RateStore), shared safely by any
// number of processes.
//
// # Model
//
// Every decision — Reserve, Commit, Release, Usage, Charge, AllowN — is one Lua
// script run on the server: EVALSHA of a script cached by SHA-1, falling
// back to EVAL when the server answers NOSCRIPT (go-redis Script.Run), so
// one round trip once the script is cached. The script reads and writes
// every scope of the request atomically, on the server's clock (TIME), in
// integer arithmetic: amounts are integer micro-units below 2^53, exact in
// Lua's doubles, divisions are floored exactly and numbers are written
// back with %d. Daily and monthly periods are aligned in the configured
// time.Location: the client sends the period boundaries around its own
// time and the script picks the one containing the server's time, so
// client clock skew of up to one period changes nothing.
//
// # Keys
//
// Layout v5: a scope group is two keys, one hash (P{group}:h: a field per
// scope, reservation record and idempotency key, and the next time
// anything is due) and one sorted set (P{group}:z: the fields that need
// attention, by time), both carrying the hash tag {group}, so a group
// lives in one Redis Cluster slot and a multi-scope reservation stays
// atomic there; a rate-limit key carries {surface:key}. Every script
// declares in KEYS each key it touches (the two keys of the group, which
// the reservation ID names), as Redis Cluster's rules ask. Nothing uses
// Redis expiry: a script that finds something due (a hold past its TTL, a
// record past its retention, a scope whose period and every reservation
// that may settle into it are over) releases or deletes it, at most
// budget.SweepBatch items a run; lifetime scopes are kept. Run Redis with
// a noeviction policy: an evicted group loses its spend.
//
// The layout is versioned: the marker key Prefix+"layout" holds "5", and
// before its first decision a Budget checks it ([Budget.CheckLayout]).
// (v5 changed the reservation record of v4, which v5 cannot read, so
// v4 data is refused like any earlier layout's.)
// If the prefix holds keys of an earlier layout (or, with DefaultPrefix,
// the default prefix of an earlier layout does) or a marker of another
// version, every method fails with [ErrLayout] instead of starting from
// empty state beside the old reservations and spend: drain the old data
// (let reservations settle and calendar periods end, then delete the old
// keys; lifetime spend must be carried over by hand) or use another
// prefix knowingly.
//
// # Security properties
//
// A hard limit is never exceeded, across processes, because admission
// (used + reserved + amount ≤ limit) and the hold happen in one script.
// Replies are decoded with checked type assertions and range checks, and a
// malformed reply is an error, never a panic. Any store failure or timeout
// is an error (TALOS_TRANSPORT_ERROR or TALOS_TRANSPORT_TIMEOUT): callers
// deny. Error messages never include the server address or reply contents.
//
// # Concurrency
//
// Budget and Rates are safe for concurrent use and start no goroutines.
// Expired reservations are released lazily, at most budget.SweepBatch per
// call on their group once their time has passed (the hash stores the
// next due time, so a call that finds nothing due reads no sorted set);
// until then they still count as reserved (so they can only deny). After
// a failed call on a *redis.ClusterClient the Budget asks it to reload
// its slot map, so decisions resume soon after a failover.
//
// # Compatibility
//
// Works with every go-redis v9 client kind (*redis.Client, *redis.Ring,
// *redis.ClusterClient, redis.UniversalClient); tested with Redis 7.0, a
// 3-master Redis 7.0 cluster and miniredis. The layout check scans the
// keyspace (every master of a cluster, every shard of a ring) once per
// prefix, the first time a prefix is used.
package redis
