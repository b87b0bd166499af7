package notify

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/contracts"
)

// DefaultRedisPrefix is the key and channel prefix of [Redis] when none is
// given.
const DefaultRedisPrefix = "talos:notify:"

// Redis is a [Transport] on Redis: the versions are fields of the hash
// prefix+"versions" and messages go over the channel prefix+"changes".
// Publish runs one script that declares its only key, so it is correct on
// a Redis Cluster (where PUBLISH reaches every node's subscribers).
type Redis struct {
	c      goredis.UniversalClient
	prefix string
}

var _ Transport = (*Redis)(nil)

// NewRedis returns the transport on client c (any go-redis client: single
// node, Cluster, Sentinel) with prefix ("" is [DefaultRedisPrefix]).
func NewRedis(c goredis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{c: c, prefix: prefix}
}

func (r *Redis) key() string     { return r.prefix + "versions" }
func (r *Redis) channel() string { return r.prefix + "changes" }

// publishScript bumps the kind's version and publishes the message, so no
// version exists that was not announced unless the node died in between.
var publishScript = goredis.NewScript(`
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PUBLISH', ARGV[2], 'v1 ' .. ARGV[1] .. ' ' .. v)
return v
`)

func redisErr(what string, err error) error {
	return contracts.Wrap(contracts.CodeInternal, "notify: redis "+what+" failed", err)
}

// Publish implements [Transport].
func (r *Redis) Publish(ctx context.Context, kind string) (int64, error) {
	v, err := publishScript.Run(ctx, r.c, []string{r.key()}, kind, r.channel()).Int64()
	if err != nil {
		return 0, redisErr("publish", err)
	}
	return v, nil
}

// Versions implements [Transport] with one HGETALL. A field that is not a
// valid kind and a positive number is skipped.
func (r *Redis) Versions(ctx context.Context) (map[string]int64, error) {
	m, err := r.c.HGetAll(ctx, r.key()).Result()
	if err != nil {
		return nil, redisErr("version read", err)
	}
	out := make(map[string]int64, len(m))
	for k, s := range m {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && ValidKind(k) {
			out[k] = n
		}
	}
	return out, nil
}

// redisPing is how long a quiet subscription waits before it checks the
// connection with a PING.
const redisPing = 15 * time.Second

// Listen implements [Transport]. A quiet subscription sends a PING every
// 15 s, so a connection that died without closing is noticed.
func (r *Redis) Listen(ctx context.Context, ready func(), deliver func(Message)) error {
	ps := r.c.Subscribe(ctx, r.channel())
	defer ps.Close()
	// go-redis waits out a receive's timeout whatever ctx does: closing
	// the subscription ends it at once.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	// The first reply confirms the subscription.
	if _, err := ps.Receive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return redisErr("subscribe", err)
	}
	ready()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, redisPing)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					return redisErr("subscription ping", err)
				}
				pinged = true
				continue
			}
			return redisErr("subscription", err)
		}
		pinged = false
		if m, ok := msg.(*goredis.Message); ok && m.Channel == r.channel() {
			if parsed, err := ParseMessage(m.Payload); err == nil {
				deliver(parsed)
			}
		}
	}
}
