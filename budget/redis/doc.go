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
// All keys of a scope group carry the hash tag {group}, so a group lives in
// one Redis Cluster slot and a multi-scope reservation stays atomic there;
// a rate-limit key carries {surface:key}. Keys expire once their period
// and every reservation that may settle into them are over; lifetime
// scopes do not expire. Run Redis with a noeviction policy: an evicted
// scope key loses its spend (a reservation never underflows a re-created
// key, but spend recorded in the lost key is gone). The layout is
// versioned by DefaultPrefix. Since v3 a reservation is one string (a
// JSON array of strings) and a scope is one string of integers under a
// new key name (":c:" where v1 used hashes under ":s:"), so a request's
// scopes are read with one MGET and every key is written with one SET
// carrying its expiry. Every process sharing a store must run the same
// layout: a new layout starts from empty state (old keys expire on their
// own), so upgrade between budget periods or drain the old version first.
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
// Reserve, Commit, Release or Usage on their group; until then they still
// count as reserved (so they can only deny). Charge does not sweep.
//
// # Compatibility
//
// Works with every go-redis v9 client kind (*redis.Client, *redis.Ring,
// *redis.ClusterClient, redis.UniversalClient); tested with Redis 7.0 and
// miniredis. Redis Cluster's rules ask scripts to declare every key in
// KEYS. AllowN, Usage's scope read and Charge without an idempotency key do;
// the others also touch keys of the same slot ({group}) that are named in
// the reservation record or built from a nonce (the sweep of expired holds,
// the scope keys of a Commit or Release, an idempotent replay's record).
// Redis 7 serves that in one slot, but it is outside the documented rules;
// the layout that removes it is described in DESIGN-NOTES.md (budget).
package redis
