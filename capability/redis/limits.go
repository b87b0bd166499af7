package redis

import "time"

// Limits and defaults of the Redis stores.
const (
	// DefaultPrefix is prepended to every key and channel name when
	// Config.Prefix is empty.
	DefaultPrefix = "talos:capability:"

	// DefaultMaxStaleness is Config.MaxStaleness when it is zero: a
	// revocation is enforced on every replica within one second of Revoke
	// returning, or requests fail closed.
	DefaultMaxStaleness = time.Second

	// MinMaxStaleness is the smallest Config.MaxStaleness: heartbeats go
	// out every MaxStaleness/4, and a round trip must fit in that.
	MinMaxStaleness = 20 * time.Millisecond

	// ResubscribeDelay is the pause after a failed receive before the subscriber tries again (go-redis then reconnects and
	// resubscribes). While it lasts the feed is not live and the Verifier
	// asks Redis on every request.
	ResubscribeDelay = 100 * time.Millisecond

	// MinReplayTTL is the shortest TTL ReplayStore.Claim accepts: Redis
	// expiries are in milliseconds.
	MinReplayTTL = time.Millisecond
)
