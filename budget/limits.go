package budget

import "time"

// Limits on every value that crosses the package boundary. They bound the
// work a single request can cause and keep every amount exactly
// representable in the Redis back-end's Lua numbers (IEEE doubles, exact up
// to 2^53).
const (
	// MaxAmount is the largest amount, limit or actual cost, in micro-units
	// (about 1.1 billion USD). Sums of amounts stay below 2^53.
	MaxAmount = int64(1) << 50

	// MaxScopes is the largest number of scopes in one reservation.
	MaxScopes = 8

	// MaxIDLen bounds scope IDs, group names, limiter keys and surfaces.
	MaxIDLen = 128

	// MaxIdempotencyKeyLen bounds ReserveRequest.IdempotencyKey.
	MaxIdempotencyKeyLen = 128

	// MaxMetaLen bounds each field of Meta.
	MaxMetaLen = 256

	// MaxReservationIDLen bounds a reservation ID: group, '~', 32 hex digits.
	MaxReservationIDLen = MaxIDLen + 1 + 32

	// MaxUSDLen bounds the decimal text accepted by ParseUSD.
	MaxUSDLen = 32

	// DefaultTTL is the reservation lifetime when ReserveRequest.TTL is zero.
	DefaultTTL = 15 * time.Minute
	// MinTTL and MaxTTL bound ReserveRequest.TTL.
	MinTTL = 10 * time.Millisecond
	MaxTTL = 24 * time.Hour

	// DefaultRetention is how long a closed (committed, released or expired)
	// reservation and its idempotency key are remembered, so that retries of
	// Reserve, Commit and Release stay idempotent and a late Commit after
	// expiry still finds its reservation. Every reservation is kept for its
	// TTL plus the retention: at 1,000 reservations a second an hour is 3.6
	// million records (a few hundred bytes each in Redis).
	DefaultRetention = time.Hour
	// MaxRetention bounds the configured retention.
	MaxRetention = 31 * 24 * time.Hour

	// RollingBuckets is the number of buckets a rolling window is divided
	// into: spend ages out of the window one bucket (window/RollingBuckets)
	// at a time.
	RollingBuckets = 60
	// MinWindow and MaxWindow bound a rolling window.
	MinWindow = time.Second
	MaxWindow = 366 * 24 * time.Hour

	// SweepBatch is the most expired reservations one operation releases in
	// the Redis back-end; the rest are released by later operations. Until
	// released they still count as reserved, which only makes admission
	// stricter.
	SweepBatch = 32

	// MaxRate and MaxBurst bound a rate limit; the emission interval
	// (Period/Rate) must be at least one microsecond and Period×Burst/Rate at
	// most MaxLimitSpan.
	MaxRate      = int64(1) << 40
	MaxBurst     = int64(1) << 40
	MaxLimitSpan = 100 * 365 * 24 * time.Hour
)

// MaxContractBudgetSize bounds a contract budget object given to
// ParseContractBudget.
const MaxContractBudgetSize = 4 << 10
