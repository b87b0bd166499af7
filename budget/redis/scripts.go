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
// Key layout v4 (P is Config.Prefix, g the scope group; the {g} hash tag
// puts a group in one Redis Cluster slot). A group is two keys, and every
// budget script declares exactly those two in KEYS (KEYS[1] the hash,
// KEYS[2] the set), so it touches no key it did not declare:
//
//	P{g}:h  HASH  the group's state:
//	          c:<ptag>:<scope ID>  scope counters (see load): "g r o cs sp"
//	                               or, rolling, "g r o" then "bucket spent" pairs
//	          r:<nonce>            reservation record, a JSON array of strings:
//	                               st amt exp n fp ikf a ex, 6 meta strings,
//	                               then per scope f g m l p b c (field,
//	                               generation, mode, limit, period kind,
//	                               bucket µs, charged)
//	          i:<idempotency key>  nonce
//	          n                    next due: no member of P{g}:z scores lower
//	P{g}:z  ZSET  fields of P{g}:h that need attention, by time (µs): a
//	              record (r:…) at its hold's expiry while active, then at the
//	              time it may be forgotten; a scope field (c:…) at the time
//	              its period and every reservation that may settle into it
//	              are over (lifetime scopes never)
//	P{<surface>:<key>}:rl  STRING  GCRA theoretical arrival time (µs)
//	Playout                STRING  the layout version, "4" (see checkLayout)
//
// The sweep (expired holds released, old records, idempotency fields and
// idle scope fields deleted, at most budget.SweepBatch members a run)
// runs only when the stored next-due time n has passed, so a decision
// pays one ZRANGEBYSCORE only then: a reserve is TIME, HMGET, HSET and
// ZADD.
var luaCommon = `
local SWEEP = ` + strconv.Itoa(budget.SweepBatch) + `
local NBUCKETS = ` + strconv.Itoa(budget.RollingBuckets) + `
local INF = 9007199254740991
local H, Z = KEYS[1], KEYS[2]
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
-- A scope is one field of space-separated integers, so the scopes of a
-- request are read with one HMGET: "g r o cs sp" (calendar and lifetime)
-- or "g r o" followed by "bucket spent" pairs (rolling). g is the
-- generation (the server time when the field was created: reservations
-- remember it, so an amount is never released into a field re-created
-- after it was deleted), r the reserved amount, o the overage, cs the
-- period start and sp the spend in it.
--
-- load decodes a scope value v (nil or false: no field) into u (spent in
-- the current period or window), cur (spent in the current slot), r, o,
-- g, b (rolling only: the buckets still in the window: index, spent, ...) and
-- fresh (the period started: the field's deletion time moves). A
-- malformed value raises a script error, which callers treat as deny.
local function load(v, kind, slot, now)
  local S = {u = 0, cur = 0, r = 0, o = 0, fresh = kind == 2}
  if kind == 2 then S.b = {} end
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
-- encode returns a scope's value and, when its period started, the time
-- (µs) its field may be deleted: once that period and every reservation
-- that may settle into it are over (nil: unchanged; lifetime: never).
local function encode(kind, slot, S, send, bucket, keep)
  if kind ~= 2 then
    -- one string.format for the whole value
    local v = string.format('%s %d %d %d %d', S.g, S.r, S.o, slot, S.cur)
    if S.fresh and kind ~= 3 then return v, send + keep end
    return v, nil
  end
  local p = {S.g, fmt(S.r), fmt(S.o)}
  do
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
  end
  -- rolling: every write moves the field's deletion time
  return table.concat(p, ' '), send + keep + bucket * NBUCKETS
end
-- The writes of a run are gathered and sent with at most one HDEL, HSET,
-- ZREM and ZADD (flush). due is the next-due time: a lower bound of Z's
-- scores, stored in field n when it changes.
local W = {h = {}, z = {}, d = {}, r = {}, nd = false}
local due = INF
local function put(f, v)
  local h = W.h
  h[#h + 1], h[#h + 2] = f, v
end
local function at(f, t)
  local z = W.z
  z[#z + 1], z[#z + 2] = fmt(t), f
  if t < due then due, W.nd = t, true end
end
local function flush()
  if W.nd then put('n', fmt(due)) end
  if #W.d > 0 then redis.call('HDEL', H, unpack(W.d)) end
  if #W.h > 0 then redis.call('HSET', H, unpack(W.h)) end
  if #W.r > 0 then redis.call('ZREM', Z, unpack(W.r)) end
  if #W.z > 0 then redis.call('ZADD', Z, unpack(W.z)) end
  W = {h = {}, z = {}, d = {}, r = {}, nd = false}
end
-- A reservation record is one field (one HGET or HSET, whatever the
-- number of scopes): a JSON array of strings, encoded and decoded by
-- cjson in C (numbers are formatted with fmt first, never by cjson).
-- Fields: 1 st, 2 amt, 3 exp, 4 n, 5 fp, 6 ikf ('' without), 7 a, 8 ex,
-- 9-14 meta, then 7 per scope from SB(i): f g m l p b c.
local function SB(i) return 14 + (i - 1) * 7 end
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
-- lib defines, on first use, the functions a decision needs only when
-- something is due, an idempotency key replays or a hold is released:
-- defining a Lua function costs on every run, so the common path defines
-- none of them.
local L
local function lib()
  if L then return L end
  L = {}
  -- release frees a reservation's amount in every scope whose field is
  -- still the generation it was charged to, in C (a cache of scope values:
  -- f → value, with the order they were loaded and the changed ones);
  -- fields in gone are being deleted.
  function L.newcache() return {v = {}, order = {}, dirty = {}} end
  function L.release(R, C, gone)
    local amt, n = tonumber(R[2]), tonumber(R[4])
    local need = {}
    for i = 1, n do
      local f = R[SB(i) + 1]
      if C.v[f] == nil and not gone[f] then need[#need + 1] = f end
    end
    if #need > 0 then
      local vs = redis.call('HMGET', H, unpack(need))
      for j, f in ipairs(need) do
        if C.v[f] == nil then
          C.v[f] = vs[j]
          C.order[#C.order + 1] = f
        end
      end
    end
    for i = 1, n do
      local f = R[SB(i) + 1]
      local v = C.v[f]
      if v and not gone[f] then
        local g, r, rest = string.match(v, '^(%S+) (%-?%d+)(.*)$')
        if g == R[SB(i) + 2] then
          C.v[f] = g .. ' ' .. fmt(tonumber(r) - amt) .. rest
          C.dirty[f] = true
        end
      end
    end
  end
  function L.putcache(C)
    for _, f in ipairs(C.order) do
      if C.dirty[f] then put(f, C.v[f]) end
    end
  end
  -- sweep handles up to SWEEP members of Z that are due: an active record
  -- whose hold expired is released (state 4) and kept until retention has
  -- passed; a closed, malformed or missing record is deleted with its
  -- idempotency field; a scope field is deleted. It then stores the exact
  -- next-due time. quiet: the group holds nothing read so far, so an empty
  -- Z needs no write.
  function L.sweep(now, retention, quiet)
    local t = redis.call('ZRANGEBYSCORE', Z, '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, SWEEP + 1)
    if #t == 0 and quiet then
      due = INF
      return
    end
    local nd, k, recs, gone = INF, 0, {}, {}
    for i = 1, #t, 2 do
      local m, s = t[i], tonumber(t[i + 1])
      if s > now or k == SWEEP then
        nd = s
        break
      end
      k = k + 1
      W.r[#W.r + 1] = m
      if string.sub(m, 1, 2) == 'r:' then
        recs[#recs + 1] = m
      else
        W.d[#W.d + 1] = m
        gone[m] = true
      end
    end
    due, W.nd = nd, true
    if #recs > 0 then
      local vs = redis.call('HMGET', H, unpack(recs))
      local C, iks, ikn = L.newcache(), {}, {}
      for j, rf in ipairs(recs) do
        local R = vs[j] and unpackrec(vs[j])
        if R and R[1] == '1' then
          L.release(R, C, gone)
          R[1] = '4'
          put(rf, pack(R))
          at(rf, now + retention)
        else
          W.d[#W.d + 1] = rf
          if R and R[6] ~= '' then
            iks[#iks + 1], ikn[#ikn + 1] = R[6], string.sub(rf, 3)
          end
        end
      end
      if #iks > 0 then
        local cur = redis.call('HMGET', H, unpack(iks))
        for j = 1, #iks do
          if cur[j] == ikn[j] then W.d[#W.d + 1] = iks[j] end
        end
      end
      L.putcache(C)
    end
    flush()
  end
  -- replay answers a request whose idempotency field names nonce prev:
  -- {2, nonce, state, amount, expiry} or {-2} for another request; nil if
  -- the record is gone (the request is new).
  function L.replay(prev, fp, now)
    local v = redis.call('HGET', H, 'r:' .. prev)
    if not v then return nil end
    local P = unpackrec(v)
    if not P then return badrec() end
    if P[5] ~= fp then return {-2} end
    local st, pexp = tonumber(P[1]), tonumber(P[3])
    if st == 1 and pexp <= now then st = 4 end
    return {2, prev, st, tonumber(P[2]), pexp}
  end
  return L
end
-- start takes the stored next-due time v and sweeps when it has passed
-- (or is unknown); true if it swept (values read before are stale).
local function start(v, now, retention, quiet)
  due = tonumber(v)
  if due and due > now then return false end
  lib().sweep(now, retention, quiet)
  return true
end
local function allnil(vs)
  for i = 1, #vs do
    if vs[i] then return false end
  end
  return true
end
local function bounds(first)
  local B = {}
  for i = 0, 7 do B[i + 1] = tonumber(ARGV[first + i]) end
  return B
end
`

// The reserve and charge scripts share their arguments. KEYS = hash, set;
// ARGV = nonce, amount, ttl µs, keep µs, retention µs, fingerprint (""
// without a key), 8 bounds, n, n × (mode, limit, kind, bucket µs, scope
// field), idempotency field ("" without), 6 meta strings (charge without an
// idempotency key: none).
var luaDecide = luaCommon + `
local now = clock()
local nonce = ARGV[1]
local amt, ttl, keep, retention = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fp = ARGV[6]
local B = bounds(7)
local n = tonumber(ARGV[15])
local m = 16 + n * 5
local ikf = ARGV[m]
local fields = {'n'}
for i = 1, n do fields[i + 1] = ARGV[16 + (i - 1) * 5 + 4] end
if ikf ~= '' then fields[n + 2] = ikf end
local vals = redis.call('HMGET', H, unpack(fields))
if start(vals[1], now, retention, allnil(vals)) then vals = redis.call('HMGET', H, unpack(fields)) end
if ikf ~= '' and vals[n + 2] then
  local res = lib().replay(vals[n + 2], fp, now)
  if res then return res end
end
local sc, out = {}, {}
local denied, warned = 0, 0
for i = 1, n do
  local a = 16 + (i - 1) * 5
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
`

// reserveScript holds amount in every scope and records the reservation.
//
// Replies: {1, nonce, warned, expiry µs, n × (used, reserved, exceeded)}
// allowed; {0, "", denying index, 0, n × (...)} denied; {2, nonce, state,
// amount, expiry µs} replay; {-2} idempotency conflict.
var reserveScript = goredis.NewScript(reserveSrc)

var reserveSrc = luaDecide + `
local rec = {'1', fmt(amt), fmt(exp), fmt(n), fp, ikf, '0', '0'}
for j = 1, 6 do rec[8 + j] = ARGV[m + j] end
for i = 1, n do
  local a, b = 16 + (i - 1) * 5, SB(i)
  local f, s = ARGV[a + 4], sc[i]
  s.S.r = s.S.r + amt
  local v, gat = encode(s.kind, s.slot, s.S, s.send, s.bucket, keep)
  put(f, v)
  if gat then at(f, gat) end
  rec[b + 1], rec[b + 2] = f, s.S.g
  for j = 0, 3 do rec[b + 3 + j] = ARGV[a + j] end
  rec[b + 7] = '0'
end
local rf = 'r:' .. nonce
if ikf ~= '' then put(ikf, nonce) end
put(rf, pack(rec))
at(rf, exp)
flush()
local res = {1, nonce, warned, exp}
for _, v in ipairs(out) do res[#res + 1] = v end
return res
`

// chargeScript is reserve and commit of the same amount in one run, with
// reserveScript's arguments (without an idempotency key the nonce is a
// placeholder and no record is kept). With an idempotency key the record
// is kept, committed, until retention has passed.
//
// Replies as reserveScript's; allowed is {1, nonce, warned, expiry µs, ...}
// with the amount charged to every scope.
var chargeScript = goredis.NewScript(chargeSrc)

var chargeSrc = luaDecide + `
local rec
if ikf ~= '' then
  rec = {'2', fmt(amt), fmt(exp), fmt(n), fp, ikf, fmt(amt), '0'}
  for j = 1, 6 do rec[8 + j] = ARGV[m + j] end
end
for i = 1, n do
  local a = 16 + (i - 1) * 5
  local f, s = ARGV[a + 4], sc[i]
  s.S.cur = s.S.cur + amt
  local v, gat = encode(s.kind, s.slot, s.S, s.send, s.bucket, keep)
  put(f, v)
  if gat then at(f, gat) end
  if rec then
    local b = SB(i)
    rec[b + 1], rec[b + 2] = f, s.S.g
    for j = 0, 3 do rec[b + 3 + j] = ARGV[a + j] end
    rec[b + 7] = fmt(amt)
  end
end
if rec then
  local rf = 'r:' .. nonce
  put(ikf, nonce)
  put(rf, pack(rec))
  at(rf, now + retention)
end
flush()
local res = {1, nonce, warned, exp}
for _, v in ipairs(out) do res[#res + 1] = v end
return res
`

// commitScript: KEYS = hash, set; ARGV = nonce, actual, keep µs,
// retention µs, 8 bounds.
//
// Replies: {1 or 2 (replay), expired, n, n × (scope field, charged,
// overage), 6 meta strings}; {-1} unknown; {-3} committed with another
// actual; {-4} released.
var commitScript = goredis.NewScript(commitSrc)

var commitSrc = luaCommon + `
local now = clock()
local nonce = ARGV[1]
local actual, keep, retention = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local B = bounds(5)
local rf = 'r:' .. nonce
local hv = redis.call('HMGET', H, 'n', rf)
local v = hv[2]
if start(hv[1], now, retention, not v) then v = redis.call('HGET', H, rf) end
if not v then return {-1} end
local R = unpackrec(v)
if not R then return badrec() end
local st, amt, n = R[1], tonumber(R[2]), tonumber(R[4])
local function reply(status, expired)
  local res = {status, expired, n}
  for i = 1, n do
    local c = tonumber(R[SB(i) + 7]) or 0
    res[#res + 1] = R[SB(i) + 1]
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
local sc, ks = {}, {}
for i = 1, n do
  local b = SB(i)
  local kind, bucket = tonumber(R[b + 5]), tonumber(R[b + 6])
  local slot, send = slot_of(kind, bucket, now, B)
  if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
  sc[i] = {mode = tonumber(R[b + 3]), limit = tonumber(R[b + 4]), kind = kind, bucket = bucket, slot = slot, send = send}
  ks[i] = R[b + 1]
end
local active = st == '1'
local expired = 1
if active and tonumber(R[3]) > now then expired = 0 end
R[1], R[7], R[8] = '2', fmt(actual), fmt(expired)
local vals = redis.call('HMGET', H, unpack(ks))
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
  local ev, gat = encode(s.kind, s.slot, S, s.send, s.bucket, keep)
  put(ks[i], ev)
  if gat then at(ks[i], gat) end
  R[SB(i) + 7] = fmt(c)
end
put(rf, pack(R))
at(rf, now + retention)
flush()
return reply(1, expired)
`

// releaseScript: KEYS = hash, set; ARGV = nonce, retention µs. Replies {1}
// done (or nothing to do), {-1} unknown, {-2} committed.
var releaseScript = goredis.NewScript(releaseSrc)

var releaseSrc = luaCommon + `
local now = clock()
local nonce, retention = ARGV[1], tonumber(ARGV[2])
local rf = 'r:' .. nonce
local hv = redis.call('HMGET', H, 'n', rf)
local v = hv[2]
if start(hv[1], now, retention, not v) then v = redis.call('HGET', H, rf) end
if not v then return {-1} end
local R = unpackrec(v)
if not R then return badrec() end
if R[1] == '2' then return {-2} end
if R[1] == '1' then
  local C = lib().newcache()
  L.release(R, C, {})
  L.putcache(C)
  R[1] = '3'
  put(rf, pack(R))
  at(rf, now + retention)
  flush()
end
return {1}
`

// usageScript: KEYS = hash, set; ARGV = kind, bucket µs, scope field,
// retention µs, 8 bounds. Reply {spent, reserved, overage, known}: known is 0 when the scope has no
// field in the group.
var usageScript = goredis.NewScript(usageSrc)

var usageSrc = luaCommon + `
local now = clock()
local kind, bucket, f, retention = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local B = bounds(5)
local hv = redis.call('HMGET', H, 'n', f)
local v = hv[2]
if start(hv[1], now, retention, not v) then v = redis.call('HGET', H, f) end
local slot = slot_of(kind, bucket, now, B)
if slot == nil then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
local S = load(v, kind, slot, now)
local known = 0
if v then known = 1 end
return {S.u, S.r, S.o, known}
`

// layoutScript reads the layout marker (KEYS[1]) and, with ARGV[1] set,
// first writes it if it is absent. Reply: the marker or false.
var layoutScript = goredis.NewScript(`
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'NX') end
return redis.call('GET', KEYS[1])
`)

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
