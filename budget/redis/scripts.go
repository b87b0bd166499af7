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
//	P{g}:c:<ptag>:<scope ID> STRING scope counters (see load): "g r o cs sp" or, rolling,
//	                               "g r o" then "bucket spent" pairs
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
-- A scope is one string of space-separated integers, so the scopes of a
-- request are read with one MGET: "g r o cs sp" (calendar and lifetime)
-- or "g r o" followed by "bucket spent" pairs (rolling). g is the
-- generation (the server time when the key was created: reservations
-- remember it, so an amount is never released from a key re-created
-- after it expired or was evicted), r the reserved amount, o the overage,
-- cs the period start and sp the spend in it.
--
-- load decodes a scope value v (nil or false: no key) into u (spent in
-- the current period or window), cur (spent in the current slot), r, o,
-- g, b (the rolling buckets still in the window: index, spent, ...) and
-- fresh (the period started: the key's expiry must be extended). A
-- malformed value raises a script error, which callers treat as deny.
local function load(v, kind, slot, now)
  local S = {u = 0, cur = 0, r = 0, o = 0, b = {}, fresh = kind == 2}
  if not v then
    S.g, S.fresh = fmt(now), true
    return S
  end
  if kind ~= 2 then
    -- one match for the whole value: string.match is most of load's cost
    local g, r, o, cs, sp = string.match(v, '^(%d+) (%-?%d+) (%d+) (%d+) (%d+)$')
    if not g then error('TALOS_STORE malformed scope value') end
    S.g, S.r, S.o = g, tonumber(r), tonumber(o)
    if tonumber(cs) < slot then
      S.fresh = true
    else
      S.cur = tonumber(sp)
      S.u = S.cur
    end
    return S
  end
  local g, r, o, rest = string.match(v, '^(%d+) (%-?%d+) (%d+)(.*)$')
  if not g then error('TALOS_STORE malformed scope value') end
  S.g, S.r, S.o = g, tonumber(r), tonumber(o)
  do
    if not string.find(rest, '^[ %d]*$') then error('TALOS_STORE malformed scope value') end
    local idx
    for w in string.gmatch(rest, '%d+') do
      if not idx then
        idx = tonumber(w)
      else
        local val = tonumber(w)
        if idx > slot - NBUCKETS then
          S.b[#S.b + 1], S.b[#S.b + 2] = idx, val
          S.u = S.u + val
          if idx == slot then S.cur = val end
        end
        idx = nil
      end
    end
    if idx then error('TALOS_STORE malformed scope value') end
  end
  return S
end
-- store writes a scope back in one call and, when its period started,
-- keeps the key until that period and every reservation that may settle
-- into it are over (lifetime scopes never expire).
local function store(k, kind, slot, S, send, bucket, keep)
  local p = {S.g, fmt(S.r), fmt(S.o)}
  if kind == 2 then
    local put = false
    for i = 1, #S.b, 2 do
      local idx, val = S.b[i], S.b[i + 1]
      if idx == slot then val, put = S.cur, true end
      if val > 0 then
        p[#p + 1], p[#p + 2] = fmt(idx), fmt(val)
      end
    end
    if not put and S.cur > 0 then
      p[#p + 1], p[#p + 2] = fmt(slot), fmt(S.cur)
    end
  else
    p[4], p[5] = fmt(slot), fmt(S.cur)
  end
  local v = table.concat(p, ' ')
  if S.fresh and kind ~= 3 then
    local at = send + keep
    if kind == 2 then at = at + bucket * NBUCKETS end
    redis.call('SET', k, v, 'PXAT', fmt(idiv(at, 1000) + 1))
  else
    redis.call('SET', k, v, 'KEEPTTL')
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
  local amt, n = tonumber(R[2]), tonumber(R[4])
  local ks = {}
  for i = 1, n do ks[i] = R[SB(i) + 1] end
  local vs = redis.call('MGET', unpack(ks))
  for i = 1, n do
    if vs[i] then
      local g, r, rest = string.match(vs[i], '^(%S+) (%-?%d+)(.*)$')
      if g == R[SB(i) + 2] then
        redis.call('SET', ks[i], g .. ' ' .. fmt(tonumber(r) - amt) .. rest, 'KEEPTTL')
      end
    end
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
local vals = redis.call('MGET', unpack(KEYS, 3, 3 + n))
if fp ~= '' then
  local prev = vals[1]
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
  local S = load(vals[1 + i], sc[i].kind, sc[i].slot, now)
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

// chargeScript is reserve and commit of the same amount in one run, with
// reserveScript's KEYS and ARGV (without an idempotency key the nonce is a
// placeholder and no meta is sent). It writes only declared keys: the scope
// keys and, with an idempotency key, the record (state committed) and the
// idempotency key; only an idempotent replay reads a key not in KEYS (the
// earlier record, named from its nonce, as Reserve does). It does not sweep: a hold that expired and was not yet
// swept still counts as reserved, which can only deny, never overspend
// (the next Reserve, Commit, Release or Usage of the group sweeps it).
//
// Replies as reserveScript's; allowed is {1, nonce, warned, expiry µs, ...}
// with the amount charged to every scope.
var chargeScript = goredis.NewScript(chargeSrc)

var chargeSrc = luaCommon + `
local now = clock()
local rprefix, nonce = ARGV[1], ARGV[2]
local amt, ttl, keep, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local fp = ARGV[7]
local B = bounds(8)
local n = tonumber(ARGV[16])
local vals = redis.call('MGET', unpack(KEYS, 3, 3 + n))
if fp ~= '' then
  local prev = vals[1]
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
local denied, warned = 0, 0
for i = 1, n do
  local a = 17 + (i - 1) * 5
  local mode, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local kind, bucket = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local slot, send = slot_of(kind, bucket, now, B)
  if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
  local S = load(vals[1 + i], kind, slot, now)
  sc[i] = {kind = kind, bucket = bucket, slot = slot, send = send, S = S}
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
for i = 1, n do
  local S = sc[i].S
  S.cur = S.cur + amt
  store(KEYS[3 + i], sc[i].kind, sc[i].slot, S, sc[i].send, sc[i].bucket, keep)
end
if fp ~= '' then
  local rec = {'2', fmt(amt), fmt(exp), fmt(n), fp, KEYS[3], fmt(amt), '0'}
  local m = 17 + n * 5
  for j = 0, 5 do rec[9 + j] = ARGV[m + j] end
  for i = 1, n do
    local a, b = 17 + (i - 1) * 5, SB(i)
    rec[b + 1], rec[b + 2] = KEYS[3 + i], sc[i].S.g
    for j = 0, 4 do rec[b + 3 + j] = ARGV[a + j] end
    rec[b + 8] = fmt(amt)
  end
  local px = fmt(idiv(ttl + retention, 1000) + 1)
  redis.call('SET', KEYS[3], nonce, 'PX', px)
  redis.call('SET', KEYS[2], pack(rec), 'PX', px)
end
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
local ks = {}
for i = 1, n do ks[i] = sc[i].k end
local vals = redis.call('MGET', unpack(ks))
for i = 1, n do
  local s = sc[i]
  local S = load(vals[i], s.kind, s.slot, now)
  if active and S.g == R[SB(i) + 2] then S.r = S.r - amt end
  local c = actual
  if s.mode == 0 then
    local room = s.limit - S.u - S.r
    if room < 0 then room = 0 end
    if c > room then c = room end
  end
  S.cur = S.cur + c
  S.o = S.o + actual - c
  store(s.k, s.kind, s.slot, S, s.send, s.bucket, keep)
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
local S = load(redis.call('GET', KEYS[2]), kind, slot, now)
return {S.u, S.r, S.o}
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
