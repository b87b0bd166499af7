// Package budget decides how much an agent may spend and how fast it may
// act: atomic multi-scope budgets with reservations, and GCRA rate limits.
//
// # Model
//
// A [Budget] holds money in integer micro-units (1 USD = 1,000,000; see
// [USD] and [ParseUSD] for the JSON edge). [Budget.Reserve] checks an
// estimated amount against an ordered list of [Scope]s (agent → team →
// org) and, if every hard scope has room, holds it in all of them in one
// atomic step. [Budget.Commit] later charges the actual cost and frees the
// rest; [Budget.Release] frees it all; a reservation nobody settles is
// released automatically when its TTL passes. A cost known up front is
// charged in one step with [Charge] (a [Charger] back-end admits and
// charges it atomically, without a reservation in between). Each scope has a [Mode]
// (hard, warn, off) and a [Period] (daily or monthly, aligned to midnight
// in a configured time.Location; a rolling window; or lifetime).
//
// A [Limiter] admits events per key at a [Limit] (rate and burst) using the
// generic cell rate algorithm over a [RateStore]; [Limits] holds one per
// surface. [MemBudget] and [MemRates] are the in-memory back-ends; the
// budget/redis package provides both on Redis, deciding every request in
// one Lua script on the server's clock.
//
// # Security properties
//
//   - A hard limit is never overspent, under any concurrency and across
//     processes sharing one store: admission tests used + reserved + amount
//     ≤ limit and holds the amount in the same atomic step, and Commit
//     charges at most the room left (an actual above the reservation is
//     charged up to the limit and the excess recorded as overage).
//   - Over budget and over the rate are results ([Reservation.Allowed],
//     [Result.Allowed]); an error means only that the store failed or the
//     input was invalid, and callers must deny. Limiters deny on store
//     failure unless configured with a Fallback limiter or the explicitly
//     named FailOpenUnsafe. Budgets have no fail-open option.
//   - Retries are safe: an IdempotencyKey makes Reserve return the first
//     reservation again, and a repeated Commit charges nothing.
//   - A denied or failed Reserve or Charge changes no state.
//   - The in-memory limiter validates a key once, when it first stores
//     state for it (a lookup that finds an entry compared the whole key),
//     and decides with one compare-and-swap; a sweep marks a decayed entry
//     dead with a compare-and-swap first, so a decision racing with it is
//     never lost (no event admitted beyond the limit).
//   - Reservation IDs, USD amounts, contract budget objects and modes from
//     outside are parsed strictly and exactly ([ParseReservationID],
//     [ParseUSD], [ParseUSDNumber], [ParseContractBudget], [ParseMode]) and
//     bounded by the limits in limits.go; amounts are never rounded.
//
// # Observability
//
// [Observe] wraps a Budget and [LimiterConfig].OnEvent receives events; both
// report [UsageEvent]s, whose JSON form is the contract ai_gateway
// usage_event. The package itself never logs and does not import audit.
//
// # Concurrency
//
// MemBudget, MemRates, Limiter and Limits are safe for concurrent use and
// start no goroutines. MemRates takes no lock on a decision: one
// lock-free map read and one compare-and-swap of the key's state. Expired reservations are released lazily when their
// scope group is next touched (and by [MemBudget.Sweep]).
//
// # Compatibility
//
// The contracts specify budgets only as schemas (ai_gateway budget,
// virtual_key.budget, usage_event) and the error mapping BUDGET_EXCEEDED and
// RATE_LIMITED → HTTP 429; enforcement semantics are this package's. Money
// is converted from micro-units to the contract's USD numbers only at the
// JSON edge. The Redis key layout is versioned by its prefix.
package budget
