package redis

import "time"

// Limits and defaults of the Redis stores.
const (
	// DefaultPrefix is prepended to every key and channel name when
	// Options.Prefix is empty.
	DefaultPrefix = "talos:capability:"

	// DefaultPingInterval is how often an idle revocation subscription pings
	// the server when Options.PingInterval is zero. It bounds how long a
	// dead subscription can go unnoticed (at most two intervals), and so how
	// long a Verifier may serve cached chains without hearing of
	// revocations.
	DefaultPingInterval = 5 * time.Second

	// ResubscribeDelay is the pause after a failed receive or an unanswered
	// ping before the subscriber tries again (go-redis then reconnects and
	// resubscribes). While it lasts the feed is not live and the Verifier
	// asks Redis on every request.
	ResubscribeDelay = 100 * time.Millisecond

	// MinReplayTTL is the shortest TTL ReplayStore.Claim accepts: Redis
	// expiries are in milliseconds.
	MinReplayTTL = time.Millisecond
)
