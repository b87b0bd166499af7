package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Options configure the stores. The zero value is usable.
type Options struct {
	// Prefix is prepended to every key and channel name. Zero means
	// DefaultPrefix. With Redis Cluster, use a hash tag (for example
	// "{talos-capability}:") so that the keys of one chain, checked by one
	// EXISTS, share a slot.
	Prefix string
	// Now is the clock used to turn revocation deadlines into TTLs. If nil,
	// time.Now.
	Now func() time.Time
	// PingInterval bounds how long a dead subscription can go unnoticed.
	// Zero means DefaultPingInterval.
	PingInterval time.Duration
}

func (o *Options) fill() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
}

func storeErr(msg string, err error) error {
	return contracts.Wrap(contracts.CodeInternal, "capability/redis: "+msg, errors.Join(capability.ErrStore, err)).WithRetryable(true)
}

// A RevocationStore is a capability.RevocationWatcher on Redis. It is safe
// for concurrent use.
type RevocationStore struct {
	c    goredis.UniversalClient
	opts Options
}

var _ capability.RevocationWatcher = (*RevocationStore)(nil)

// revokeScript stores the revocation, keeping the later deadline when the
// key is already revoked, and publishes it, atomically.
var revokeScript = goredis.NewScript(`
local ttl = tonumber(ARGV[1])
local cur = redis.call('PTTL', KEYS[1])
if ttl == 0 then
  redis.call('SET', KEYS[1], '1')
elseif cur == -2 or (cur >= 0 and cur < ttl) then
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`)

// NewRevocationStore returns a store on client c.
func NewRevocationStore(c goredis.UniversalClient, opts Options) *RevocationStore {
	opts.fill()
	return &RevocationStore{c: c, opts: opts}
}

func (s *RevocationStore) channel() string { return s.opts.Prefix + "revocations" }

// Revoke implements capability.RevocationStore. A zero until revokes
// forever; an until in the past still records the key for one millisecond
// and notifies the watchers.
func (s *RevocationStore) Revoke(ctx context.Context, key string, until time.Time) error {
	if key == "" {
		return contracts.Errorf(contracts.CodeInvalidInput, "capability/redis: empty revocation key")
	}
	var ttl int64
	if !until.IsZero() {
		ttl = max(1, until.Sub(s.opts.Now()).Milliseconds())
	}
	err := revokeScript.Run(ctx, s.c, []string{s.opts.Prefix + "rev:" + key}, strconv.FormatInt(ttl, 10), s.channel(), key).Err()
	if err != nil {
		return storeErr("revoke failed", err)
	}
	return nil
}

// AnyRevoked implements capability.RevocationStore with one EXISTS.
func (s *RevocationStore) AnyRevoked(ctx context.Context, keys []string) (bool, error) {
	if len(keys) == 0 {
		return false, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.opts.Prefix + "rev:" + k
	}
	n, err := s.c.Exists(ctx, full...).Result()
	if err != nil {
		return false, storeErr("revocation check failed", err)
	}
	return n > 0, nil
}

// WatchRevocations implements capability.RevocationWatcher. It starts one
// goroutine holding a subscription; stop ends it and waits for it.
func (s *RevocationStore) WatchRevocations(evict func(string)) (live func() bool, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var alive atomic.Bool
	ps := s.c.Subscribe(ctx, s.channel())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ps.Close()
		pinged := false
		for {
			msg, err := ps.ReceiveTimeout(ctx, s.opts.PingInterval)
			if ctx.Err() != nil {
				alive.Store(false)
				return
			}
			if err != nil {
				var ne interface{ Timeout() bool }
				if errors.As(err, &ne) && ne.Timeout() && !pinged {
					// Idle: prove the connection still works.
					pinged = true
					if ps.Ping(ctx) == nil {
						continue
					}
				}
				// Broken, or a ping went unanswered: stop trusting the
				// feed. go-redis reconnects and resubscribes on the next
				// receive; the confirmation flushes the cache.
				if alive.Swap(false) {
					evict("")
				}
				pinged = false
				select {
				case <-ctx.Done():
					return
				case <-time.After(ResubscribeDelay):
				}
				continue
			}
			pinged = false
			switch m := msg.(type) {
			case *goredis.Subscription:
				if m.Kind == "subscribe" {
					evict("")
					alive.Store(true)
				}
			case *goredis.Message:
				evict(m.Payload)
			}
		}
	}()
	return alive.Load, func() {
		cancel()
		ps.Close() // unblocks a pending receive
		wg.Wait()
	}
}

// A ReplayStore is an identity.NonceStore on Redis (SET NX PX). It is safe
// for concurrent use.
type ReplayStore struct {
	c    goredis.UniversalClient
	opts Options
}

var _ identity.NonceStore = (*ReplayStore)(nil)

// NewReplayStore returns a store on client c.
func NewReplayStore(c goredis.UniversalClient, opts Options) *ReplayStore {
	opts.fill()
	return &ReplayStore{c: c, opts: opts}
}

// Claim implements identity.NonceStore. A ttl under MinReplayTTL is an
// error with code TALOS_INVALID_INPUT.
func (s *ReplayStore) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < MinReplayTTL {
		return false, contracts.Errorf(contracts.CodeInvalidInput, "capability/redis: replay ttl must be at least 1ms")
	}
	ok, err := s.c.SetNX(ctx, s.opts.Prefix+"nonce:"+key, "1", ttl).Result()
	if err != nil {
		return false, storeErr("replay claim failed", err)
	}
	return ok, nil
}
