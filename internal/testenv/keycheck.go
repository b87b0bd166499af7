package testenv

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// keyCheckShim is prepended to every script a checked client sends. It
// shadows the global redis table with one whose call and pcall first check
// that every key the command names is one of the script's KEYS, and raise
// a script error ("keycheck: ...") when it is not, or when the command is
// not in the table of key positions (so a new command cannot slip
// through unchecked).
const keyCheckShim = `local __redis = redis
local __declared = {}
for _, k in ipairs(KEYS) do __declared[k] = true end
local __pos = {
  GET=1, SET=1, SETNX=1, SETEX=1, PSETEX=1, GETSET=1, GETDEL=1, GETEX=1, INCR=1, INCRBY=1,
  DECR=1, DECRBY=1, INCRBYFLOAT=1, APPEND=1, STRLEN=1, EXPIRE=1, PEXPIRE=1, EXPIREAT=1,
  PEXPIREAT=1, TTL=1, PTTL=1, PERSIST=1, TYPE=1, HGET=1, HSET=1, HMSET=1, HMGET=1, HDEL=1,
  HGETALL=1, HINCRBY=1, HINCRBYFLOAT=1, HEXISTS=1, HLEN=1, HKEYS=1, HVALS=1, ZADD=1, ZREM=1,
  ZSCORE=1, ZMSCORE=1, ZCARD=1, ZRANGE=1, ZRANGEBYSCORE=1, ZREVRANGEBYSCORE=1,
  ZREMRANGEBYSCORE=1, ZREMRANGEBYRANK=1, ZCOUNT=1, ZINCRBY=1, LPUSH=1, RPUSH=1, LPOP=1,
  RPOP=1, LRANGE=1, LLEN=1, LTRIM=1, SADD=1, SREM=1, SISMEMBER=1, SMEMBERS=1, SCARD=1,
  DEL='all', UNLINK='all', EXISTS='all', MGET='all', TOUCH='all', MSET='pairs',
  TIME='none', PUBLISH='none', SPUBLISH='none',
}
local function __check(cmd, ...)
  local c = string.upper(tostring(cmd))
  local p = __pos[c]
  if p == nil then error('keycheck: command ' .. c .. ' is not in the key-position table') end
  local a = {...}
  local function need(k)
    if not __declared[k] then error('keycheck: ' .. c .. ' touches undeclared key ' .. tostring(k)) end
  end
  if p == 1 then need(a[1])
  elseif p == 'all' then for i = 1, #a do need(a[i]) end
  elseif p == 'pairs' then for i = 1, #a, 2 do need(a[i]) end
  end
end
local redis = setmetatable({
  call = function(cmd, ...) __check(cmd, ...) return __redis.call(cmd, ...) end,
  pcall = function(cmd, ...) __check(cmd, ...) return __redis.pcall(cmd, ...) end,
}, {__index = __redis})
`

// CheckDeclaredKeys makes c run every Lua script it sends (EVAL, EVALSHA
// and their _RO forms) with a check that each key a redis.call or
// redis.pcall touches is declared in KEYS: Redis Cluster's rule for
// scripts, which a single server (and Redis 7's cluster, inside one slot)
// does not enforce. A script that breaks it fails with a script error
// whose message starts with "keycheck:". EVALSHA is answered NOSCRIPT on
// the client side so go-redis's Script.Run falls back to EVAL, whose
// script text the hook instruments; a pipeline holding an EVALSHA fails
// as a whole with NOSCRIPT. Scripts run slower; use it in tests of
// behaviour, not in benchmarks.
func CheckDeclaredKeys(c *redis.Client) {
	c.AddHook(keyCheckHook{})
}

type keyCheckHook struct{}

func (keyCheckHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (keyCheckHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		instrument(cmd)
		if n := cmd.Name(); n == "evalsha" || n == "evalsha_ro" {
			cmd.SetErr(redis.ErrNoScript)
			return redis.ErrNoScript
		}
		return next(ctx, cmd)
	}
}

func (keyCheckHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if n := cmd.Name(); n == "evalsha" || n == "evalsha_ro" {
				cmd.SetErr(redis.ErrNoScript)
				return redis.ErrNoScript
			}
			instrument(cmd)
		}
		return next(ctx, cmds)
	}
}

// instrument prepends the shim to an EVAL's script (after a "#!lua"
// shebang line, which must stay first).
func instrument(cmd redis.Cmder) {
	if n := cmd.Name(); n != "eval" && n != "eval_ro" {
		return
	}
	args := cmd.Args()
	src, ok := args[1].(string)
	if !ok || strings.Contains(src, "local __redis = redis") {
		return
	}
	if strings.HasPrefix(src, "#!") {
		line, rest, _ := strings.Cut(src, "\n")
		args[1] = line + "\n" + keyCheckShim + rest
		return
	}
	args[1] = keyCheckShim + src
}
