package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Config configures the stores. The zero value is usable.
type Config struct {
	// Prefix is prepended to every key and channel name. Zero means
	// DefaultPrefix. On Redis Cluster (a *goredis.ClusterClient) a
	// RevocationStore needs a prefix with a hash tag (for example
	// "{talos-capability}:") so that its keys and its shard channels
	// share one slot; without one every call fails closed with a
	// TALOS_INVALID_INPUT error. A ReplayStore needs no hash tag.
	Prefix string
	// Now is the clock used to turn revocation deadlines into TTLs. If nil,
	// time.Now.
	Now func() time.Time
	// MaxStaleness bounds how long after a Revoke returns a Verifier
	// watching this store may still serve the revoked chain from its
	// cache. The watch feed counts as live only while it keeps receiving,
	// through its subscription, heartbeats that it PUBLISHes through the
	// server every MaxStaleness/4; when the latest heartbeat received was
	// sent more than MaxStaleness ago, the Verifier asks Redis on every
	// request (and denies if Redis cannot answer). Zero means
	// DefaultMaxStaleness; values under MinMaxStaleness are raised to it.
	MaxStaleness time.Duration
}

func (o *Config) fill() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxStaleness == 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	o.MaxStaleness = max(o.MaxStaleness, MinMaxStaleness)
}

func storeErr(msg string, err error) error {
	return contracts.Wrap(contracts.CodeInternal, "capability/redis: "+msg, errors.Join(capability.ErrStore, err)).WithRetryable(true)
}

// A RevocationStore is a capability.RevocationWatcher on Redis. It is safe
// for concurrent use.
type RevocationStore struct {
	c    goredis.UniversalClient
	opts Config
	// sharded: c is a cluster client, so the feed uses sharded pub/sub
	// (SPUBLISH/SSUBSCRIBE) on the shard owning the prefix's hash tag.
	sharded bool
	// bad is the error every call returns: a cluster client with a
	// prefix that has no hash tag.
	bad error
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
redis.call(ARGV[4], ARGV[2], ARGV[3])
return 1
`)

// HasHashTag reports whether a Redis Cluster hashes prefix+anything by a
// hash tag of prefix: prefix holds a '{' followed, later, by a '}' with at
// least one byte between them (the cluster hashes only the bytes between
// the first '{' and the first '}' after it).
func HasHashTag(prefix string) bool {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(prefix[i+1:], '}')
	return j > 0
}

// NewRevocationStore returns a store on client c. On a
// *goredis.ClusterClient the store uses sharded pub/sub (SPUBLISH and
// SSUBSCRIBE, Redis 7) and needs a hash tag in Config.Prefix; see the
// package doc's Redis Cluster section.
func NewRevocationStore(c goredis.UniversalClient, opts Config) *RevocationStore {
	opts.fill()
	s := &RevocationStore{c: c, opts: opts}
	if _, ok := c.(*goredis.ClusterClient); ok {
		s.sharded = true
		if !HasHashTag(opts.Prefix) {
			s.bad = contracts.New(contracts.CodeInvalidInput, "capability/redis: on Redis Cluster the revocation store's Config.Prefix needs a hash tag, e.g. \"{talos-capability}:\"")
		}
	}
	return s
}

// reload asks a cluster client to fetch the slot map again (in the
// background, coalesced by go-redis). go-redis reloads it on MOVED
// replies but not on a refused connection: without this, a client keeps
// dialling a crashed master until ClusterStateReloadInterval (60 s by
// default) has passed, long after a replica took over.
func reload(c goredis.UniversalClient) {
	if cc, ok := c.(*goredis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

func (s *RevocationStore) publishCmd() string {
	if s.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

func (s *RevocationStore) subscribe(ctx context.Context, channels ...string) *goredis.PubSub {
	if s.sharded {
		return s.c.SSubscribe(ctx, channels...)
	}
	return s.c.Subscribe(ctx, channels...)
}

func (s *RevocationStore) publish(ctx context.Context, channel, msg string) error {
	if s.sharded {
		return s.c.SPublish(ctx, channel, msg).Err()
	}
	return s.c.Publish(ctx, channel, msg).Err()
}

func (s *RevocationStore) channel() string { return s.opts.Prefix + "revocations" }

// Revoke implements capability.RevocationStore. A zero until revokes
// forever; an until in the past still records the key for one millisecond
// and notifies the watchers.
func (s *RevocationStore) Revoke(ctx context.Context, key string, until time.Time) error {
	if s.bad != nil {
		return s.bad
	}
	if key == "" {
		return contracts.New(contracts.CodeInvalidInput, "capability/redis: empty revocation key")
	}
	var ttl int64
	if !until.IsZero() {
		ttl = max(1, until.Sub(s.opts.Now()).Milliseconds())
	}
	err := revokeScript.Run(ctx, s.c, []string{s.opts.Prefix + "rev:" + key}, strconv.FormatInt(ttl, 10), s.channel(), key, s.publishCmd()).Err()
	if err != nil {
		reload(s.c)
		return storeErr("revoke failed", err)
	}
	return nil
}

// AnyRevoked implements capability.RevocationStore with one EXISTS.
func (s *RevocationStore) AnyRevoked(ctx context.Context, keys []string) (bool, error) {
	if s.bad != nil {
		return false, s.bad
	}
	if len(keys) == 0 {
		return false, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.opts.Prefix + "rev:" + k
	}
	n, err := s.c.Exists(ctx, full...).Result()
	if err != nil {
		reload(s.c)
		return false, storeErr("revocation check failed", err)
	}
	return n > 0, nil
}

// WatchRevocations implements capability.RevocationWatcher. It starts two
// goroutines: one holds a subscription to the revocation channel and to a
// heartbeat channel of its own, the other PUBLISHes a heartbeat on that
// channel every MaxStaleness/4 through the ordinary client. Redis delivers
// a subscriber's messages in the order it executed the PUBLISHes, so a
// heartbeat sent at time S that comes back proves that every revocation
// published before S has been delivered (and evicted). live reports true
// only while the latest such proof is younger than MaxStaleness: a feed
// that goes quiet without closing, or whose server stops answering, stops
// being trusted within MaxStaleness whatever the TCP connection does. A
// subscription without a fresh heartbeat for 2 × MaxStaleness is closed
// and made again. stop ends both goroutines and waits for them.
func (s *RevocationStore) WatchRevocations(evict func(string)) (live func() bool, stop func()) {
	w := &watch{s: s, evict: evict, base: time.Now(), poke: make(chan struct{}, 1)}
	var id [16]byte
	_, _ = rand.Read(id[:])
	w.hbChan = s.opts.Prefix + "heartbeat:" + hex.EncodeToString(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	if s.bad != nil {
		// Never live: every request asks AnyRevoked, which fails closed.
		cancel()
		return func() bool { return false }, func() {}
	}
	w.ps = s.subscribe(ctx, s.channel(), w.hbChan)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.receive(ctx) }()
	go func() { defer wg.Done(); w.heartbeat(ctx) }()
	return w.live, func() {
		cancel()
		w.mu.Lock()
		w.ps.Close() // unblocks a pending receive
		w.mu.Unlock()
		wg.Wait()
		w.proof.Store(0)
	}
}

// A watch is one Verifier's subscription. Times are nanoseconds since
// base on the monotonic clock.
type watch struct {
	s      *RevocationStore
	evict  func(string)
	base   time.Time
	hbChan string
	poke   chan struct{} // asks for a heartbeat now

	mu sync.Mutex // guards ps against stop while receive replaces it
	ps *goredis.PubSub

	proof atomic.Int64 // send time of the latest heartbeat received on this subscription; 0: none
	epoch atomic.Int64 // when the current subscription was confirmed; earlier heartbeats prove nothing
}

func (w *watch) since() int64 { return max(1, int64(time.Since(w.base))) }

// live reports whether cached chains may be served: a heartbeat sent less
// than MaxStaleness ago has come back through the subscription.
func (w *watch) live() bool {
	p := w.proof.Load()
	return p != 0 && w.since()-p < int64(w.s.opts.MaxStaleness)
}

func (w *watch) heartbeat(ctx context.Context) {
	t := time.NewTicker(w.s.opts.MaxStaleness / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.poke:
		}
		sent := w.since()
		pctx, cancel := context.WithTimeout(ctx, w.s.opts.MaxStaleness)
		// An error only means no proof this round: liveness lapses on its
		// own.
		_ = w.s.publish(pctx, w.hbChan, strconv.FormatInt(sent, 10))
		cancel()
	}
}

func (w *watch) receive(ctx context.Context) {
	defer func() {
		w.mu.Lock()
		w.ps.Close()
		w.mu.Unlock()
	}()
	interval := w.s.opts.MaxStaleness / 4
	started := w.since() // of the current subscription attempt
	for {
		msg, err := w.ps.ReceiveTimeout(ctx, interval)
		if ctx.Err() != nil {
			w.proof.Store(0)
			return
		}
		now := w.since()
		if err == nil {
			switch m := msg.(type) {
			case *goredis.Subscription:
				if m.Kind == "sunsubscribe" && (m.Channel == w.s.channel() || m.Channel == w.hbChan) {
					// The server dropped the shard subscription (its slot
					// moved: failover or resharding). Stop trusting the
					// feed and subscribe again, to the slot's new owner.
					w.proof.Store(0)
					w.epoch.Store(0)
					reload(w.s.c)
					w.mu.Lock()
					w.ps.Close()
					if ctx.Err() == nil {
						w.ps = w.s.subscribe(ctx, w.s.channel(), w.hbChan)
					}
					w.mu.Unlock()
					started = w.since()
					continue
				}
				if (m.Kind == "subscribe" || m.Kind == "ssubscribe") && m.Channel == w.s.channel() {
					// (Re)subscribed: revocations published meanwhile may
					// have been missed. Only heartbeats sent from now on
					// prove anything about this subscription.
					w.proof.Store(0)
					w.epoch.Store(now)
					w.evict("")
					select {
					case w.poke <- struct{}{}:
					default:
					}
				}
			case *goredis.Message:
				if m.Channel != w.hbChan {
					w.evict(m.Payload)
					break
				}
				sent, perr := strconv.ParseInt(m.Payload, 10, 64)
				if perr == nil && sent >= w.epoch.Load() && sent <= now && sent > w.proof.Load() && w.epoch.Load() != 0 {
					w.proof.Store(sent)
				}
			}
		} else {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				// Broken: stop trusting the feed at once. go-redis
				// reconnects and resubscribes on the next receive; the
				// confirmation flushes the cache.
				w.proof.Store(0)
				w.epoch.Store(0)
				reload(w.s.c)
				select {
				case <-ctx.Done():
					return
				case <-time.After(ResubscribeDelay):
				}
				continue
			}
		}
		// No fresh heartbeat for 2 × MaxStaleness (a connection that
		// stopped forwarding without closing): subscribe again on a new
		// connection.
		if last := max(w.proof.Load(), started); now-last > 2*int64(w.s.opts.MaxStaleness) {
			w.proof.Store(0)
			w.epoch.Store(0)
			w.mu.Lock()
			w.ps.Close()
			if ctx.Err() == nil {
				w.ps = w.s.subscribe(ctx, w.s.channel(), w.hbChan)
			}
			w.mu.Unlock()
			started = w.since()
		}
	}
}

// A ReplayStore is an identity.NonceStore on Redis (SET NX PX). It is safe
// for concurrent use.
type ReplayStore struct {
	c    goredis.UniversalClient
	opts Config
}

var _ identity.NonceStore = (*ReplayStore)(nil)

// NewReplayStore returns a store on client c.
func NewReplayStore(c goredis.UniversalClient, opts Config) *ReplayStore {
	opts.fill()
	return &ReplayStore{c: c, opts: opts}
}

// Claim implements identity.NonceStore. A ttl under MinReplayTTL is an
// error with code TALOS_INVALID_INPUT.
func (s *ReplayStore) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < MinReplayTTL {
		return false, contracts.New(contracts.CodeInvalidInput, "capability/redis: replay ttl must be at least 1ms")
	}
	ok, err := s.c.SetNX(ctx, s.opts.Prefix+"nonce:"+key, "1", ttl).Result()
	if err != nil {
		reload(s.c)
		return false, storeErr("replay claim failed", err)
	}
	return ok, nil
}
