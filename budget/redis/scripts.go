package redis

import (
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
)

// The Lua scripts. Every decision is one script run (EVALSHA, falling back
// to EVAL on NOSCRIPT), on the server's clock (TIME), in integer arithmetic:
// Lua numbers are doubles, every value stays below 2^53 (budget.MaxAmount),
// divisions go through idiv, and numbers are passed to Redis formatted with
// %d, never through Lua's default %.14g conversion.
//
// Key layout v5 (P is Config.Prefix, g the scope group; the {g} hash tag
// puts a group in one Redis Cluster slot). A group is two keys, and every
// budget script declares exactly those two in KEYS (KEYS[1] the hash,
// KEYS[2] the set), so it touches no key it did not declare:
//
//	P{g}:h  HASH  the group's state:
//	          c:<ptag>:<scope ID>  scope counters (see luaLoad): "g r o cs sp"
//	                               or, rolling, "g r o" then "bucket spent" pairs
//	          r:<nonce>            reservation record, a JSON array of strings:
//	                               st amt exp fp ikf a ex meta, then per
//	                               scope d g c (descriptor "mode limit kind
//	                               bucket field", generation, charged)
//	          i:<idempotency key>  nonce
//	          n                    next due: no member of P{g}:z scores lower
//	P{g}:z  ZSET  fields of P{g}:h that need attention, by time (µs): a
//	              record (r:…) at its hold's expiry while active, then at the
//	              time it may be forgotten; a scope field (c:…) at the time
//	              its period and every reservation that may settle into it
//	              are over (lifetime scopes never)
//	P{<surface>:<key>}:rl  STRING  GCRA theoretical arrival time (µs)
//	Playout                STRING  the layout version, "5" (see checkLayout)
//
// The sweep (expired holds released, old records, idempotency fields and
// idle scope fields deleted, at most budget.SweepBatch members a run)
// runs only when the stored next-due time n has passed, so a decision
// pays one ZRANGEBYSCORE only then: a reserve is TIME, HMGET, HSET and
// ZADD; a commit TIME, two HMGETs, HSET and ZADD.
//
// A decision is a few microseconds of Lua, and on the server every C
// function call (tonumber, string.*, unpack), table, closure and string
// counts. So the common path is straight-line code assembled from the
// snippets below: numbers the scripts wrote or the client sent are
// converted by arithmetic coercion (x + 0) after a pattern has checked
// them or where the client formatted them; a scope value is checked and
// split by one string.match; the record is one cjson call; and the
// functions needed only for a sweep, a replay, a release or a rolling
// window are defined on first use (lib).

// luaHead starts every budget script: the keys, the server time (µs) and
// the lazily defined library.
var luaHead = `
local H, Z = KEYS[1], KEYS[2]
local sformat, smatch = string.format, string.match
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local INF = 9007199254740991
local due = INF
local L
local function lib()
  if L then return L end
  L = {}
` + luaLib + `
  return L
end
`

// luaUnpackrec defines unpackrec. A reservation record is one field (one
// HGET or HSET, whatever the number of scopes): a JSON array of strings,
// encoded and decoded by cjson in C (numbers are formatted with %d first,
// never by cjson). Fields: 1 st, 2 amt, 3 exp, 4 fp, 5 ikf (empty without),
// 6 a, 7 ex, 8 meta (opaque to the scripts), then 3 per scope from
// 8 + 3 (i - 1): d (descriptor "mode limit kind bucket field"), g
// (generation), c (charged).
//
// unpackrec decodes a record and checks every element is a string, the
// state is known and every descriptor parses; it returns the record and
// D, 5 per scope (mode, limit, kind, bucket as numbers, field), or nil if
// the record is malformed.
const luaUnpackrec = `
-- strings raises unless every element of R is a string: comparing a
-- string with anything else is an error, and no string is below ''
-- (one VM instruction an element, where type() is a C call).
local function strings(R)
  for i = 1, #R do
    if R[i] < '' then return end
  end
end
local function unpackrec(s)
  local ok, R = pcall(cjson.decode, s)
  if not ok or type(R) ~= 'table' then return nil end
  local m = #R - 8
  local st = R[1]
  if m < 0 or m % 3 ~= 0 or (st ~= '1' and st ~= '2' and st ~= '3' and st ~= '4') then return nil end
  if not pcall(strings, R) then return nil end
  local D = {}
  for i = 1, m / 3 do
    local mo, li, ki, bu, f = smatch(R[6 + 3 * i], '^([01]) (%d+) ([0-3]) (%d+) (c:%S+)$')
    if not mo then return nil end
    bu = bu + 0
    if ki == '2' and bu < 1 then return nil end
    local k = 5 * i
    D[k - 4], D[k - 3], D[k - 2], D[k - 1], D[k] = mo + 0, li + 0, ki + 0, bu, f
  end
  return R, D
end
`

// luaLib is the body of lib: the functions a decision needs only when
// something is due, an idempotency key replays, a hold is released or a
// scope is a rolling window.
var luaLib = luaUnpackrec + `
L.unpackrec = unpackrec
local SWEEP = ` + strconv.Itoa(budget.SweepBatch) + `
local NBUCKETS = ` + strconv.Itoa(budget.RollingBuckets) + `
local function fmt(x) return sformat('%d', x) end
-- rload decodes a rolling scope's value "g r o" then "bucket spent"
-- pairs: g, r, o, cur (spent in the current bucket), u (spent in the
-- window) and the buckets still in the window (index, spent, ...).
function L.rload(v, slot)
  local g, r, o, rest = smatch(v, '^(%d+) (%-?%d+) (%d+)(.*)$')
  if not g or not string.find(rest, '^[ %d]*$') then error('TALOS_STORE malformed scope value') end
  local b, u, cur, idx = {}, 0, 0, nil
  for w in string.gmatch(rest, '%d+') do
    if not idx then
      idx = w + 0
    else
      local val = w + 0
      if idx > slot - NBUCKETS then
        b[#b + 1], b[#b + 2] = idx, val
        u = u + val
        if idx == slot then cur = val end
      end
      idx = nil
    end
  end
  if idx then error('TALOS_STORE malformed scope value') end
  return g, r + 0, o + 0, cur, u, b
end
-- renc encodes a rolling scope's value; every write moves the field's
-- deletion time, which it returns second.
function L.renc(slot, send, bucket, keep, g, r, o, cur, b)
  local p = {g, fmt(r), fmt(o)}
  local put = false
  for i = 1, #b, 2 do
    local idx, val = b[i], b[i + 1]
    if idx == slot then val, put = cur, true end
    if val > 0 then
      p[#p + 1], p[#p + 2] = fmt(idx), fmt(val)
    end
  end
  if not put and cur > 0 then
    p[#p + 1], p[#p + 2] = fmt(slot), fmt(cur)
  end
  return table.concat(p, ' '), send + keep + bucket * NBUCKETS
end
-- The sweep's and release's writes are gathered and sent with at most
-- one HDEL, HSET, ZREM and ZADD (flush). due is the next-due time: a lower
-- bound of Z's scores, stored in field n when it changes.
local W = {h = {}, z = {}, d = {}, r = {}, nd = false}
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
L.put, L.at, L.flush = put, at, flush
-- release frees a reservation's amount in every scope whose field is
-- still the generation it was charged to, in C (a cache of scope values:
-- f → value, with the order they were loaded and the changed ones);
-- fields in gone are being deleted.
function L.newcache() return {v = {}, order = {}, dirty = {}} end
function L.release(R, D, C, gone)
  local amt, n = R[2] + 0, (#R - 8) / 3
  local need = {}
  for i = 1, n do
    local f = D[5 * i]
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
    local f = D[5 * i]
    local v = C.v[f]
    if v and not gone[f] then
      local g, r, rest = smatch(v, '^(%S+) (%-?%d+)(.*)$')
      if g == R[7 + 3 * i] then
        C.v[f] = g .. ' ' .. fmt(r - amt) .. rest
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
function L.sweep(retention, quiet)
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
      local R, D
      if vs[j] then R, D = unpackrec(vs[j]) end
      if R and R[1] == '1' then
        L.release(R, D, C, gone)
        R[1] = '4'
        put(rf, cjson.encode(R))
        at(rf, now + retention)
      else
        W.d[#W.d + 1] = rf
        if R and R[5] ~= '' then
          iks[#iks + 1], ikn[#ikn + 1] = R[5], string.sub(rf, 3)
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
-- allnil reports whether vs (an HMGET reply) holds no value.
function L.allnil(vs)
  for i = 1, #vs do
    if vs[i] then return false end
  end
  return true
end
-- replay answers a request whose idempotency field names nonce prev:
-- {2, nonce, state, amount, expiry} or {-2} for another request; nil if
-- the record is gone (the request is new).
function L.replay(prev, fp)
  local v = redis.call('HGET', H, 'r:' .. prev)
  if not v then return nil end
  local P = unpackrec(v)
  if not P then return redis.error_reply('TALOS_STORE malformed reservation record') end
  if P[4] ~= fp then return {-2} end
  local st, pexp = P[1] + 0, P[3] + 0
  if st == 1 and pexp <= now then st = 4 end
  return {2, prev, st, P[2] + 0, pexp}
end
`

// luaStart reads the stored next-due time @V@ (a string the scripts
// wrote, or false) and sweeps when it has passed or is unknown (@QUIET@:
// nothing of the group was read, so an empty set needs no write); @SWEPT@
// is the code run after a sweep (the values read before are stale).
// stored is the n stored once it ran.
const luaStart = `
due = tonumber(@V@)
if not due or due <= now then
  lib().sweep(retention, @QUIET@)
  @SWEPT@
end
local stored = due
`

// luaSlot sets slot (the period start for calendar scopes, the bucket
// index for rolling ones, 0 for lifetime) and send (the end of that slot
// in µs, 0 for lifetime) for the scope of kind and bucket, from the
// server time and the bounds the client computed: ARGV[@BO@+1..+4] daily,
// ARGV[@BO@+5..+8] monthly, the boundaries of three periods. A server
// time outside them is an error (the clocks disagree by over a period).
const luaSlot = `
  local slot, send
  if kind == 3 then
    slot, send = 0, 0
  elseif kind == 2 then
    slot = math.floor(now / bucket)
    if slot * bucket > now then slot = slot - 1 elseif (slot + 1) * bucket <= now then slot = slot + 1 end
    send = (slot + 1) * bucket
  else
    local o = @BO@
    if kind == 0 then o = @BO@ + 4 end
    local b2, b3 = ARGV[o + 2] + 0, ARGV[o + 3] + 0
    if now < b2 then
      local b1 = ARGV[o + 1] + 0
      if b1 <= now then slot, send = b1, b2 end
    elseif now < b3 then
      slot, send = b2, b3
    else
      local b4 = ARGV[o + 4] + 0
      if now < b4 then slot, send = b3, b4 end
    end
  end
  if not slot then return redis.error_reply('TALOS_CLOCK server time outside the period bounds') end
`

// luaLoad decodes the scope value v (nil or false: no field) of the scope
// of kind at slot. A scope is one field of space-separated integers, so
// the scopes of a request are read with one HMGET: "g r o cs sp"
// (calendar and lifetime) or "g r o" followed by "bucket spent" pairs
// (rolling). g is the generation (the server time when the field was
// created: reservations remember it, so an amount is never released into
// a field re-created after it was deleted), r the reserved amount, o the
// overage, cs the period start and sp the spend in it. It sets g, r, o,
// cur (spent in the current slot), u (spent in the current period or
// window), fresh (the period started: the field's deletion time moves)
// and, rolling, b (the buckets still in the window). A malformed value
// raises a script error, which callers treat as deny.
const luaLoad = `
  local g, r, o, cur, u, fresh, b
  if not v then
    g, r, o, cur, u, fresh = sformat('%d', now), 0, 0, 0, 0, true
    if kind == 2 then b = {} end
  elseif kind ~= 2 then
    local cs, sp
    g, r, o, cs, sp = smatch(v, '^(%d+) (%-?%d+) (%d+) (%d+) (%d+)$')
    if not g then error('TALOS_STORE malformed scope value') end
    r, o = r + 0, o + 0
    if cs + 0 < slot then
      cur, u, fresh = 0, 0, true
    else
      cur = sp + 0
      u, fresh = cur, false
    end
  else
    g, r, o, cur, u, b = lib().rload(v, slot)
    fresh = true
  end
`

// luaEncode sets nv, the scope's new value with reserved rr, overage oo
// and current spend cc, and gat, when its period started, the time (µs)
// its field may be deleted: once that period and every reservation that
// may settle into it are over (nil: unchanged; lifetime: never).
const luaEncode = `
    local nv, gat
    if kind ~= 2 then
      nv = sformat('%s %d %d %d %d', g, @RR@, @OO@, slot, @CC@)
      if fresh and kind ~= 3 then gat = send + keep end
    else
      nv, gat = lib().renc(slot, send, bucket, keep, g, @RR@, @OO@, @CC@, b)
    end
`

// snippet fills a snippet's @NAME@ placeholders.
func snippet(s string, kv ...string) string {
	for i := 0; i < len(kv); i += 2 {
		kv[i] = "@" + kv[i] + "@"
	}
	return strings.NewReplacer(kv...).Replace(s)
}

// The reserve and charge scripts share their arguments. KEYS = hash, set;
// ARGV = 1 nonce, 2 amount, 3 ttl µs, 4 keep µs, 5 retention µs, 6
// fingerprint ("" without a key), 7-14 bounds, 15 idempotency field (""
// without), 16 meta (opaque, "" without a record), then 5 per scope i
// from 12 + 5i: mode (0 hard, 1 warn), limit, kind (budget.PeriodKind),
// bucket µs, field. The client formats every number in decimal.
//
// The decision reads every scope (the reply's n × (used, reserved,
// exceeded)) and, unless one denies, computes its new value into the HSET
// arguments hs; @RES@ (reserve) or @CHG@ (charge) is the amount added to
// the reserved or the spent counter, @REC@ whether a record is kept.
var luaDecide = luaHead + `
local amt, ttl, keep, retention = ARGV[2] + 0, ARGV[3] + 0, ARGV[4] + 0, ARGV[5] + 0
local fp, ikf = ARGV[6], ARGV[15]
local n = (#ARGV - 16) / 5
if n < 0 or n % 1 ~= 0 then return redis.error_reply('TALOS_ARGS malformed scopes') end
local fields = {'n'}
for i = 1, n do fields[i + 1] = ARGV[16 + 5 * i] end
if ikf ~= '' then fields[n + 2] = ikf end
local vals = redis.call('HMGET', H, unpack(fields))
` + snippet(luaStart, "V", "vals[1]", "QUIET", "L.allnil(vals)",
	"SWEPT", "vals = redis.call('HMGET', H, unpack(fields))") + `
if ikf ~= '' and vals[n + 2] then
  local res = lib().replay(vals[n + 2], fp)
  if res then return res end
end
local exp = now + ttl
local out, hs, rec = {1, 0, exp}, {}, nil
local zs, nz = nil, 0
local denied, warned = 0, 0
local amts
if @REC@ then
  amts = sformat('%d', amt)
  rec = {@ST@, amts, sformat('%d', exp), fp, ikf, @AC@, '0', ARGV[16]}
end
for i = 1, n do
  local a = 12 + 5 * i
  local limit, kind, bucket = ARGV[a + 1] + 0, ARGV[a + 2] + 0, ARGV[a + 3] + 0
  local v = vals[i + 1]
` + snippet(luaSlot, "BO", "6") + luaLoad + `
  local ex = 0
  if u > limit or r > limit - u or amt > limit - u - r then
    ex = 1
    if ARGV[a] == '0' then
      if denied == 0 then denied = i end
    else
      warned = 1
    end
  end
  out[3 * i + 1], out[3 * i + 2], out[3 * i + 3] = u, r, ex
  if denied == 0 then
` + snippet(luaEncode, "RR", "r + @RES@", "OO", "o", "CC", "cur + @CHG@") + `
    hs[2 * i - 1], hs[2 * i] = ARGV[a + 4], nv
    if gat then
      zs = zs or {}
      zs[nz + 1], zs[nz + 2], nz = sformat('%d', gat), ARGV[a + 4], nz + 2
      if gat < due then due = gat end
    end
    if rec then
      rec[6 + 3 * i] = ARGV[a] .. ' ' .. ARGV[a + 1] .. ' ' .. ARGV[a + 2] .. ' ' .. ARGV[a + 3] .. ' ' .. ARGV[a + 4]
      rec[7 + 3 * i], rec[8 + 3 * i] = g, @AC@
    end
  end
end
if denied > 0 then
  out[1], out[2], out[3] = 0, denied, 0
  return out
end
if rec then
  local rf = 'r:' .. ARGV[1]
  local m = 2 * n
  if ikf ~= '' then hs[m + 1], hs[m + 2], m = ikf, ARGV[1], m + 2 end
  hs[m + 1], hs[m + 2] = rf, cjson.encode(rec)
  zs = zs or {}
  zs[nz + 1], zs[nz + 2], nz = @RATS@, rf, nz + 2
  if @RAT@ < due then due = @RAT@ end
end
if due < stored then hs[#hs + 1], hs[#hs + 2] = 'n', sformat('%d', due) end
if #hs > 0 then redis.call('HSET', H, unpack(hs)) end
if zs then redis.call('ZADD', Z, unpack(zs)) end
out[2] = warned
return out
`

// reserveScript holds amount in every scope and records the reservation
// (kept, active, until its hold expires).
//
// Replies: {1, warned, expiry µs, n × (used, reserved, exceeded)} allowed;
// {0, denying index, 0, n × (...)} denied; {2, nonce, state, amount,
// expiry µs} replay; {-2} idempotency conflict.
var reserveScript = goredis.NewScript(reserveSrc)

var reserveSrc = snippet(luaDecide, "REC", "true", "ST", "'1'", "AC", "'0'", "RES", "amt", "CHG", "0", "RAT", "exp", "RATS", "rec[3]")

// chargeScript is reserve and commit of the same amount in one run, with
// reserveScript's arguments (without an idempotency key the nonce is a
// placeholder and no record is kept). With an idempotency key the record
// is kept, committed, until retention has passed.
//
// Replies as reserveScript's; allowed is {1, warned, expiry µs, ...} with
// the amount charged to every scope.
var chargeScript = goredis.NewScript(chargeSrc)

var chargeSrc = snippet(luaDecide, "REC", "ikf ~= ''", "ST", "'2'", "AC", "amts", "RES", "0", "CHG", "amt", "RAT", "(now + retention)", "RATS", "sformat('%d', now + retention)")

// commitScript: KEYS = hash, set; ARGV = nonce, actual, keep µs,
// retention µs, 8 bounds.
//
// Replies: {1 or 2 (replay), expired, meta, the n scope fields joined by
// spaces, n × charged}; {-1} unknown; {-3} committed with another actual;
// {-4} released.
var commitScript = goredis.NewScript(commitSrc)

var commitSrc = luaHead + luaUnpackrec + `
local actual, keep, retention = ARGV[2] + 0, ARGV[3] + 0, ARGV[4] + 0
local rf = 'r:' .. ARGV[1]
local hv = redis.call('HMGET', H, 'n', rf)
local v = hv[2]
` + snippet(luaStart, "V", "hv[1]", "QUIET", "not v", "SWEPT", "v = redis.call('HGET', H, rf)") + `
if not v then return {-1} end
local R, D = unpackrec(v)
if not R then return redis.error_reply('TALOS_STORE malformed reservation record') end
local st, n = R[1], (#R - 8) / 3
local ks = {}
for i = 1, n do ks[i] = D[5 * i] end
local res = {1, 1, R[8], table.concat(ks, ' ')}
if st == '2' then
  if R[6] + 0 ~= actual then return {-3} end
  for i = 1, n do res[4 + i] = R[8 + 3 * i] + 0 end
  res[1], res[2] = 2, R[7] + 0
  return res
end
if st == '3' then return {-4} end
local amt, active, expired = R[2] + 0, st == '1', 1
if active and R[3] + 0 > now then expired = 0 end
local vals = ks
if n > 0 then vals = redis.call('HMGET', H, unpack(ks)) end
local hs, zs, nz = {}, {}, 0
for i = 1, n do
  local k = 5 * i
  local limit, kind, bucket = D[k - 3], D[k - 2], D[k - 1]
  local v = vals[i]
` + snippet(luaSlot, "BO", "4") + luaLoad + `
  if active and g == R[7 + 3 * i] then r = r - amt end
  local c = actual
  if D[k - 4] == 0 then
    local room = limit - u - r
    if room < 0 then room = 0 end
    if c > room then c = room end
  end
` + snippet(luaEncode, "RR", "r", "OO", "o + actual - c", "CC", "cur + c") + `
  hs[2 * i - 1], hs[2 * i] = D[k], nv
  if gat then
    zs[nz + 1], zs[nz + 2], nz = sformat('%d', gat), D[k], nz + 2
    if gat < due then due = gat end
  end
  R[8 + 3 * i] = sformat('%d', c)
  res[4 + i] = c
end
R[1], R[6], R[7] = '2', sformat('%d', actual), sformat('%d', expired)
res[2] = expired
local rat = now + retention
hs[2 * n + 1], hs[2 * n + 2] = rf, cjson.encode(R)
zs[nz + 1], zs[nz + 2] = sformat('%d', rat), rf
if rat < due then due = rat end
if due < stored then hs[#hs + 1], hs[#hs + 2] = 'n', sformat('%d', due) end
redis.call('HSET', H, unpack(hs))
redis.call('ZADD', Z, unpack(zs))
return res
`

// releaseScript: KEYS = hash, set; ARGV = nonce, retention µs. Replies {1}
// done (or nothing to do), {-1} unknown, {-2} committed.
var releaseScript = goredis.NewScript(releaseSrc)

var releaseSrc = luaHead + `
local retention = ARGV[2] + 0
local rf = 'r:' .. ARGV[1]
local hv = redis.call('HMGET', H, 'n', rf)
local v = hv[2]
` + snippet(luaStart, "V", "hv[1]", "QUIET", "not v", "SWEPT", "v = redis.call('HGET', H, rf)") + `
if not v then return {-1} end
local R, D = lib().unpackrec(v)
if not R then return redis.error_reply('TALOS_STORE malformed reservation record') end
if R[1] == '2' then return {-2} end
if R[1] == '1' then
  local C = L.newcache()
  L.release(R, D, C, {})
  L.putcache(C)
  R[1] = '3'
  L.put(rf, cjson.encode(R))
  L.at(rf, now + retention)
  L.flush()
end
return {1}
`

// usageScript: KEYS = hash, set; ARGV = kind, bucket µs, scope field,
// retention µs, 8 bounds. Reply {spent, reserved, overage, known}: known
// is 0 when the scope has no field in the group.
var usageScript = goredis.NewScript(usageSrc)

var usageSrc = luaHead + `
local kind, bucket, f, retention = ARGV[1] + 0, ARGV[2] + 0, ARGV[3], ARGV[4] + 0
local hv = redis.call('HMGET', H, 'n', f)
local v = hv[2]
` + snippet(luaStart, "V", "hv[1]", "QUIET", "not v", "SWEPT", "v = redis.call('HGET', H, f)") + `
` + snippet(luaSlot, "BO", "4") + luaLoad + `
local known = 0
if v then known = 1 end
return {u, r, o, known}
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
