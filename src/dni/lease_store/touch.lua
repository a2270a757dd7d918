-- One page view of one session in one bucket (a pool, or a property when no pool leases):
-- find or create the session, then renew its lease or lease it the free number idle longest,
-- applying the pool's exhaustion mode. Atomic: Redis runs a script alone, so two instances can
-- never hand one free number to two sessions. Every key shares the bucket's {hash tag}.
--
-- KEYS[1] state   HASH sid -> "number|lease_start|lease_end|shared|page_views|last_page_view"
-- KEYS[2] meta    HASH sid -> the service's JSON about the session (opaque here)
-- KEYS[3] free    ZSET number -> idle since (ms); lowest score = idle longest
-- KEYS[4] busy    ZSET number -> lease end (ms), the latest of its holders
-- KEYS[5] holders HASH number -> space-separated sids holding it
-- KEYS[6] numbers SET  live numbers of the pool
-- KEYS[7] stats   HASH synced, exhaustions, peak, limited, admit_at (the new-lease budget's
--                 next admission time, GCRA)
-- KEYS[8] seen    ZSET sid -> last seen (ms), for forgetting idle sessions
-- KEYS[9] created ZSET sid -> when the store first held it (ms), so that a session whose first
--                 write to the database died with its instance can be found and recovered
-- ARGV[1] sid, ARGV[2] now, ARGV[3] lease ms, ARGV[4] mode: share | exclusive | static
-- ARGV[5] meta for a session new to the store ('' for a returning one)
-- ARGV[6] its initial state ('' for none), ARGV[7] retention ms
-- ARGV[8] 1 when this touch is a page view, 0 for a lease renewal only
-- ARGV[9] renewal hold ms: renewals alone extend a lease at most this long after the last page view
-- ARGV[10] least new leases per pool per minute (0: no budget), ARGV[11] turnover factor: the
--          budget is max(ARGV[10], ceil(ARGV[11] * numbers * 60000 / lease ms))
local sid = ARGV[1]
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local mode = ARGV[4]

local function split(s)
  local out, i = {}, 1
  while true do
    local j = string.find(s, '|', i, true)
    if not j then out[#out + 1] = string.sub(s, i); return out end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
local function fmt(x) return string.format('%.0f', x) end

if mode ~= 'static' and not redis.call('HGET', KEYS[7], 'synced') then return {'SYNC'} end

local raw = redis.call('HGET', KEYS[1], sid)
local meta
local created = false
if raw then
  meta = redis.call('HGET', KEYS[2], sid)
elseif ARGV[5] ~= '' then
  created = true
  meta = ARGV[5]
  redis.call('HSET', KEYS[2], sid, meta)
  raw = ARGV[6]
  if raw == '' then raw = '|0|0|0|0' end
else
  return {'MISSING'}
end
local st = split(raw)
local n, s, e, sh, pv = st[1], tonumber(st[2]), tonumber(st[3]), st[4], tonumber(st[5]) + tonumber(ARGV[8])
local page_view = ARGV[8] == '1'
-- The last page view; a state from before the field (or restored) counts from its lease start.
local lv = tonumber(st[6] or '')
if page_view then lv = now elseif not lv then if s > 0 then lv = s else lv = now end end

-- The pool's budget of new leases (GCRA over a minute): true when this one is within it.
local function within_budget()
  local floor = tonumber(ARGV[10])
  if floor <= 0 then return true end
  local per_minute = math.max(floor, math.ceil(tonumber(ARGV[11]) * redis.call('SCARD', KEYS[6]) * 60000 / lease))
  local interval = math.max(1, math.floor(60000 / per_minute))
  local at = tonumber(redis.call('HGET', KEYS[7], 'admit_at') or '0')
  if at < now then at = now end
  if at + interval - now > 60000 then return false end
  redis.call('HSET', KEYS[7], 'admit_at', fmt(at + interval))
  return true
end

local outcome, co, capped = 'static', '', '0'
if mode ~= 'static' then
  local held = false
  if n ~= '' and e > now and redis.call('ZSCORE', KEYS[4], n) and redis.call('SISMEMBER', KEYS[6], n) == 1 then
    -- A renewal: the common page view, kept to the fewest commands.
    held, outcome = true, 'renewed'
  elseif not page_view then
    -- A renewal alone never takes a number, nor takes back a lapsed one: a page view does.
    held, outcome = true, 'lapsed'
  else
    -- Leases that ended free their numbers (if still live), idle since the moment they ended.
    local ended = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'WITHSCORES')
    for i = 1, #ended, 2 do
      local num = ended[i]
      redis.call('ZREM', KEYS[4], num)
      redis.call('HDEL', KEYS[5], num)
      if redis.call('SISMEMBER', KEYS[6], num) == 1 then redis.call('ZADD', KEYS[3], ended[i + 1], num) end
    end
    if n ~= '' and redis.call('ZSCORE', KEYS[3], n) then
      -- Its lease ran out but nobody took the number: the visitor keeps the number they saw.
      redis.call('ZREM', KEYS[3], n)
      held, outcome, s, sh = true, 'leased', now, '0'
    end
  end
  if not held then
    local pick = redis.call('ZRANGE', KEYS[3], 0, 0)
    if #pick > 0 and not within_budget() then
      redis.call('HINCRBY', KEYS[7], 'limited', 1)
      n, s, e, sh, outcome = '', 0, 0, '0', 'limited'
    elseif #pick > 0 then
      n, s, sh, outcome = pick[1], now, '0', 'leased'
      redis.call('ZREM', KEYS[3], n)
    else
      redis.call('HINCRBY', KEYS[7], 'exhaustions', 1)
      local victim = nil
      if mode == 'share' then
        local v = redis.call('ZRANGE', KEYS[4], 0, 0)
        if #v > 0 then victim = v[1] end
      end
      if victim then
        n, s, sh, outcome = victim, now, '1', 'shared'
        co = redis.call('HGET', KEYS[5], n) or ''
        for other in string.gmatch(co, '%S+') do
          local ost = redis.call('HGET', KEYS[1], other)
          if ost then
            local o = split(ost)
            o[4] = '1'
            redis.call('HSET', KEYS[1], other, table.concat(o, '|'))
          end
        end
      else
        n, s, e, sh, outcome = '', 0, 0, '0', 'exhausted'
      end
    end
  end
  if n ~= '' and outcome ~= 'lapsed' then
    local want = now + lease
    if not page_view and want > lv + tonumber(ARGV[9]) then
      want, capped = lv + tonumber(ARGV[9]), '1'
    end
    -- A renewal never shortens the lease it extends.
    if page_view or want > e then e = want end
    local cur = redis.call('ZSCORE', KEYS[4], n)
    if (not cur) or tonumber(cur) < e then redis.call('ZADD', KEYS[4], e, n) end
    if outcome ~= 'renewed' then
      local hs = redis.call('HGET', KEYS[5], n) or ''
      if not string.find(' ' .. hs .. ' ', ' ' .. sid .. ' ', 1, true) then
        if hs == '' then hs = sid else hs = hs .. ' ' .. sid end
        redis.call('HSET', KEYS[5], n, hs)
      end
      local busy = redis.call('ZCARD', KEYS[4])
      if busy > tonumber(redis.call('HGET', KEYS[7], 'peak') or '0') then redis.call('HSET', KEYS[7], 'peak', busy) end
    end
  end
end

redis.call('HSET', KEYS[1], sid, table.concat({n, fmt(s), fmt(e), sh, fmt(pv), fmt(lv)}, '|'))
redis.call('ZADD', KEYS[8], now, sid)
if created then
  redis.call('ZADD', KEYS[9], now, sid)
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - tonumber(ARGV[7]))
  -- Forget sessions idle past retention, a few per new session: the set only grows with new
  -- sessions, so this keeps it bounded without costing renewals anything.
  local old = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now - tonumber(ARGV[7]), 'LIMIT', 0, 16)
  for _, o in ipairs(old) do
    redis.call('HDEL', KEYS[1], o)
    redis.call('HDEL', KEYS[2], o)
    redis.call('ZREM', KEYS[8], o)
  end
end
return {outcome, n, fmt(s), fmt(e), sh, fmt(pv), meta, co, capped}
