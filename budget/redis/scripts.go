package redis

import (
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
)

// The Lua scripts. Every decision is one script run (EVALSHA, falling back
// to EVAL on NOSCRIPT), on the server's clock (TIME), in integer arithmetic:
// Lua numbers are doubles, every value stays below 2^53 (budget.MaxAmount),
// divisions go through idiv, and numbers are passed to Redis formatted with
// %d, never through Lua's default %.14g conversion.
//
// Key layout (P is Config.Prefix, g the scope group; the {g} hash tag puts
// a group in one Redis Cluster slot):
//
//	P{g}:exp                 ZSET  active reservation nonces by expiry (µs)
//	P{g}:r:<nonce>           STRING reservation record, a JSON array of strings: st amt exp n
//	                               fp ik a ex, 6 meta strings, then per scope
//	                               k g m l p b id c (key, generation, mode, limit,
//	                               period kind, bucket µs, scope ID, charged)
//	P{g}:i:<idempotency key> STRING nonce
//	P{g}:s:<ptag>:<scope ID> HASH  r (reserved) o (overage) g (generation), calendar and
//	                               lifetime: cs (period start) sp (spent),
//	                               rolling: x<bucket> (spent per bucket)
//	P{<surface>:<key>}:rl    STRING GCRA theoretical arrival time (µs)
//
// Scripts touch reservation and scope keys named in the reservation record
// (sweep, commit) that are not in KEYS; they are always in the same slot as
// the declared keys, which Redis Cluster permits.
var luaCommon = `
local SWEEP = ` + strconv.Itoa(budget.SweepBatch) + `
local NBUCKETS = ` + strconv.Itoa(budget.RollingBuckets) + `
local function fmt(x) return string.format('%d', x) end
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- slot_of returns the period start (calendar), bucket index (rolling) or 0
-- (lifetime), and the end of that slot in µs (0 for lifetime); nil when the
-- server clock is outside the bounds the client computed.
local function slot_of(kind, bucket, now, B)
  if kind == 3 then return 0, 0 end
  if kind == 2 then
    local s = idiv(now, bucket)
    return s, (s + 1) * bucket
  end
  local off = 0
  if kind == 0 then off = 4 end
  for i = 1, 3 do
    if B[off + i] <= now and now < B[off + i + 1] then return B[off + i], B[off + i + 1] end
  end
  return nil, nil
end
-- load reads a scope in one call: u (spent in the current period or
-- window), cur (spent in the current slot), r (reserved), g (generation:
-- when the key was created; reservations remember it, so an amount is
-- never released from a key re-created after it expired or was evicted)
-- and fresh (the period started: the key's expiry must be extended).
local function load(k, kind, slot, now)
  local S = {u = 0, cur = 0, r = 0, fresh = false}
  if kind == 2 then
    local h = redis.call('HGETALL', k)
    local stale
    for i = 1, #h, 2 do
      local f = h[i]
      if f == 'r' then
        S.r = tonumber(h[i + 1])
      elseif f == 'g' then
        S.g = h[i + 1]
      elseif string.sub(f, 1, 1) == 'x' then
        local idx = tonumber(string.sub(f, 2))
        if idx <= slot - NBUCKETS then
          stale = stale or {}
          stale[#stale + 1] = f
        else
          local v = tonumber(h[i + 1])
          S.u = S.u + v
          if idx == slot then S.cur = v end
        end
      end
    end
    if stale then redis.call('HDEL', k, unpack(stale)) end
    S.fresh = true
  else
    local f = redis.call('HMGET', k, 'cs', 'sp', 'r', 'g')
    local cs = tonumber(f[1])
    S.r, S.g = tonumber(f[3]) or 0, f[4]
    if cs == nil or cs < slot then
      S.fresh = true
    else
      S.cur = tonumber(f[2]) or 0
      S.u = S.cur
    end
  end
  if not S.g then
    S.g, S.r = fmt(now), 0
  end
  return S
end
-- store writes a scope back in one call and, when its period started,
-- keeps the key until that period and every reservation that may settle
-- into it are over (lifetime scopes never expire).
local function store(k, kind, slot, S, send, bucket, keep)
  if kind == 2 then
    if S.cur > 0 then
      redis.call('HSET', k, 'r', fmt(S.r), 'g', S.g, 'x' .. fmt(slot), fmt(S.cur))
    else
      redis.call('HSET', k, 'r', fmt(S.r), 'g', S.g)
    end
  else
    redis.call('HSET', k, 'r', fmt(S.r), 'g', S.g, 'cs', fmt(slot), 'sp', fmt(S.cur))
  end
  if S.fresh and kind ~= 3 then
    local at = send + keep
    if kind == 2 then at = at + bucket * NBUCKETS end
    redis.call('PEXPIREAT', k, fmt(idiv(at, 1000) + 1))
  end
end
-- A reservation record is one string value (one GET or SET, whatever the
-- number of scopes): a JSON array of strings, encoded and decoded by
-- cjson in C (numbers are formatted with fmt first, never by cjson).
-- Fields: 1 st, 2 amt, 3 exp, 4 n, 5 fp, 6 ik ('' without), 7 a, 8 ex,
-- 9-14 meta, then 8 per scope from SB(i): k g m l p b id c.
local function SB(i) return 14 + (i - 1) * 8 end
local function pack(t) return cjson.encode(t) end
-- unpackrec decodes a record; nil if it is malformed.
local function unpackrec(s)
  local ok, t = pcall(cjson.decode, s)
  if not ok or type(t) ~= 'table' then return nil end
  local n = tonumber(t[4])
  if not n or #t ~= SB(n + 1) then return nil end
  for i = 1, #t do
    if type(t[i]) ~= 'string' then return nil end
  end
  return t
end
local function badrec() return redis.error_reply('TALOS_STORE malformed reservation record') end
local function exceeds(u, r, amt, limit)
  return u > limit or r > limit - u or amt > limit - u - r
end
-- release frees a reservation's amount in every scope whose key is still
-- the generation it was charged to.
local function release(R)
  local amt = tonumber(R[2])
  for i = 1, tonumber(R[4]) do
    local k = R[SB(i) + 1]
    if redis.call('HGET', k, 'g') == R[SB(i) + 2] then redis.call('HINCRBY', k, 'r', fmt(-amt)) end
  end
end
local function sweep(expk, rprefix, now)
  local due = redis.call('ZRANGEBYSCORE', expk, '-inf', fmt(now), 'LIMIT', 0, SWEEP)
  if #due == 0 then return end
  redis.call('ZREM', expk, unpack(due))
  for _, nonce in ipairs(due) do
    local rk = rprefix .. nonce
    local v = redis.call('GET', rk)
    local R = v and unpackrec(v)
    if R and R[1] == '1' then
      release(R)
      R[1] = '4'
      redis.call('SET', rk, pack(R), 'KEEPTTL')
    end
  end
end
local function bounds(first)
  local B = {}
  for i = 0, 7 do B[i + 1] = tonumber(ARGV[first + i]) end
  return B
end
`

// reserveScript: KEYS = exp, reservation, idempotency (or the reservation
// again), scope keys...; ARGV = rprefix, nonce, amount, ttl µs, keep µs,
// retention µs, fingerprint ("" without a key), 8 bounds, n, n × (mode,
// limit, kind, bucket µs, scope ID), 6 meta strings.
//
// Replies: {1, nonce, warned, expiry µs, n × (used, reserved, exceeded)}
// allowed; {0, "", denying index, 0, n × (...)} denied; {2, nonce, state,
// amount, expiry µs} replay; {-2} idempotency conflict.
var reserveScript = goredis.NewScript(reserveSrc)

var reserveSrc = luaCommon + `
local now = clock()
local rprefix, nonce = ARGV[1], ARGV[2]
local amt, ttl, keep, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local fp = ARGV[7]
local B = bounds(8)
local n = tonumber(ARGV[16])
sweep(KEYS[1], rprefix, now)
if fp ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local v = redis.call('GET', rprefix .. prev)
    if v then
      local P = unpackrec(v)
      if not P then return badrec() end
      if P[5] ~= fp then return {-2} end
      local st, pexp = tonumber(P[1]), tonumber(P[3])
      if st == 1 and pexp <= now then st = 4 end
      return {2, prev, st, tonumber(P[2]), pexp}
    end
  end
end
local sc, out = {}, {}
for i = 1, n do
  local a = 17 + (i - 1) * 5
  local kind, bucket = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local slot, send = slot_of(kind, bucket, now, B)
  if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
  sc[i] = {kind = kind, bucket = bucket, slot = slot, send = send}
end
local denied, warned = 0, 0
for i = 1, n do
  local a = 17 + (i - 1) * 5
  local mode, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local S = load(KEYS[3 + i], sc[i].kind, sc[i].slot, now)
  sc[i].S = S
  local ex = 0
  if exceeds(S.u, S.r, amt, limit) then
    ex = 1
    if mode == 0 and denied == 0 then denied = i end
    if mode == 1 then warned = 1 end
  end
  out[#out + 1] = S.u
  out[#out + 1] = S.r
  out[#out + 1] = ex
end
if denied > 0 then
  local res = {0, '', denied, 0}
  for _, v in ipairs(out) do res[#res + 1] = v end
  return res
end
local exp = now + ttl
local rk = KEYS[2]
local rec = {'1', fmt(amt), fmt(exp), fmt(n), fp, '', '0', '0'}
local m = 17 + n * 5
for j = 0, 5 do rec[9 + j] = ARGV[m + j] end
for i = 1, n do
  local a, b = 17 + (i - 1) * 5, SB(i)
  local k, S = KEYS[3 + i], sc[i].S
  S.r = S.r + amt
  store(k, sc[i].kind, sc[i].slot, S, sc[i].send, sc[i].bucket, keep)
  rec[b + 1], rec[b + 2] = k, S.g
  for j = 0, 4 do rec[b + 3 + j] = ARGV[a + j] end
  rec[b + 8] = '0'
end
local px = fmt(idiv(ttl + retention, 1000) + 1)
if fp ~= '' then
  rec[6] = KEYS[3]
  redis.call('SET', KEYS[3], nonce, 'PX', px)
end
redis.call('SET', rk, pack(rec), 'PX', px)
redis.call('ZADD', KEYS[1], fmt(exp), nonce)
local res = {1, nonce, warned, exp}
for _, v in ipairs(out) do res[#res + 1] = v end
return res
`

// commitScript: KEYS = exp, reservation; ARGV = rprefix, nonce, actual,
// keep µs, retention µs, 8 bounds.
//
// Replies: {1 or 2 (replay), expired, n, n × (scope ID, charged, overage),
// 6 meta strings}; {-1} unknown; {-3} committed with another actual; {-4}
// released.
var commitScript = goredis.NewScript(commitSrc)

var commitSrc = luaCommon + `
local now = clock()
local rprefix, nonce = ARGV[1], ARGV[2]
local actual, keep, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local B = bounds(6)
local rk = KEYS[2]
sweep(KEYS[1], rprefix, now)
local v = redis.call('GET', rk)
if not v then return {-1} end
local R = unpackrec(v)
if not R then return badrec() end
local st, amt, n = R[1], tonumber(R[2]), tonumber(R[4])
local function reply(status, expired)
  local res = {status, expired, n}
  for i = 1, n do
    local c = tonumber(R[SB(i) + 8]) or 0
    res[#res + 1] = R[SB(i) + 7]
    res[#res + 1] = c
    res[#res + 1] = actual - c
  end
  for j = 9, 14 do res[#res + 1] = R[j] end
  return res
end
if st == '2' then
  if tonumber(R[7]) ~= actual then return {-3} end
  return reply(2, tonumber(R[8]) or 0)
end
if st == '3' then return {-4} end
local sc = {}
for i = 1, n do
  local b = SB(i)
  local kind, bucket = tonumber(R[b + 5]), tonumber(R[b + 6])
  local slot, send = slot_of(kind, bucket, now, B)
  if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
  sc[i] = {k = R[b + 1], mode = tonumber(R[b + 3]), limit = tonumber(R[b + 4]), kind = kind, bucket = bucket, slot = slot, send = send}
end
local active = st == '1'
local expired = 1
if active then
  if tonumber(R[3]) > now then expired = 0 end
  redis.call('ZREM', KEYS[1], nonce)
end
R[1], R[7], R[8] = '2', fmt(actual), fmt(expired)
for i = 1, n do
  local s = sc[i]
  local S = load(s.k, s.kind, s.slot, now)
  if active and S.g == R[SB(i) + 2] then S.r = S.r - amt end
  local c = actual
  if s.mode == 0 then
    local room = s.limit - S.u - S.r
    if room < 0 then room = 0 end
    if c > room then c = room end
  end
  S.cur = S.cur + c
  store(s.k, s.kind, s.slot, S, s.send, s.bucket, keep)
  if actual > c then redis.call('HINCRBY', s.k, 'o', fmt(actual - c)) end
  R[SB(i) + 8] = fmt(c)
end
local px = fmt(idiv(retention, 1000) + 1)
redis.call('SET', rk, pack(R), 'PX', px)
if R[6] ~= '' then redis.call('PEXPIRE', R[6], px) end
return reply(1, expired)
`

// releaseScript: KEYS = exp, reservation; ARGV = rprefix, nonce,
// retention µs. Replies {1} done (or nothing to do), {-1} unknown, {-2}
// committed.
var releaseScript = goredis.NewScript(releaseSrc)

var releaseSrc = luaCommon + `
local now = clock()
local rprefix, nonce, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rk = KEYS[2]
sweep(KEYS[1], rprefix, now)
local v = redis.call('GET', rk)
if not v then return {-1} end
local R = unpackrec(v)
if not R then return badrec() end
if R[1] == '2' then return {-2} end
if R[1] == '1' then
  release(R)
  redis.call('ZREM', KEYS[1], nonce)
  R[1] = '3'
  local px = fmt(idiv(retention, 1000) + 1)
  redis.call('SET', rk, pack(R), 'PX', px)
  if R[6] ~= '' then redis.call('PEXPIRE', R[6], px) end
end
return {1}
`

// usageScript: KEYS = exp, scope; ARGV = rprefix, kind, bucket µs, 8
// bounds. Reply {spent, reserved, overage}.
var usageScript = goredis.NewScript(usageSrc)

var usageSrc = luaCommon + `
local now = clock()
local kind, bucket = tonumber(ARGV[2]), tonumber(ARGV[3])
local B = bounds(4)
sweep(KEYS[1], ARGV[1], now)
local slot = slot_of(kind, bucket, now, B)
if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
local S = load(KEYS[2], kind, slot, now)
local o = tonumber(redis.call('HGET', KEYS[2], 'o')) or 0
return {S.u, S.r, o}
`

// gcraScript: KEYS = limiter key; ARGV = interval µs, burst, n. Reply
// {allowed, remaining, retry after µs, reset after µs}.
var gcraScript = goredis.NewScript(gcraSrc)

var gcraSrc = `
local function fmt(x) return string.format('%d', x) end
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local newtat = tat + T * n
local diff = now - (newtat - T * burst)
if diff < 0 then
  return {0, idiv(now - (tat - T * burst), T), -diff, tat - now}
end
if n > 0 then
  redis.call('SET', KEYS[1], fmt(newtat), 'PX', fmt(idiv(newtat - now, 1000) + 1))
end
return {1, idiv(diff, T), 0, newtat - now}
`
