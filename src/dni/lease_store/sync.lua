-- Loads a pool into the store from the database: its live numbers (each with the time it was
-- last released, so "idle longest" survives a Redis restart) and the leases still running.
-- Safe to repeat: numbers already free or busy keep their state.
-- KEYS as in touch.lua.
-- ARGV[1] count of numbers k, then k pairs (number, idle_since),
-- then lease tuples (sid, number, start, end, shared) to the end.
local k = tonumber(ARGV[1])
local live = {}
for i = 0, k - 1 do live[ARGV[2 + 2 * i]] = true end
for _, num in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  if not live[num] then
    redis.call('SREM', KEYS[6], num)
    redis.call('ZREM', KEYS[3], num)
  end
end
local base = 2 + 2 * k
for i = base, #ARGV, 5 do
  local sid, num, start, stop, shared = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local cur = redis.call('ZSCORE', KEYS[4], num)
  if (not cur) or tonumber(cur) < tonumber(stop) then redis.call('ZADD', KEYS[4], stop, num) end
  redis.call('ZREM', KEYS[3], num)
  local hs = redis.call('HGET', KEYS[5], num) or ''
  if not string.find(' ' .. hs .. ' ', ' ' .. sid .. ' ', 1, true) then
    if hs == '' then hs = sid else hs = hs .. ' ' .. sid end
    redis.call('HSET', KEYS[5], num, hs)
  end
end
for i = 0, k - 1 do
  local num, idle = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  redis.call('SADD', KEYS[6], num)
  if not redis.call('ZSCORE', KEYS[4], num) and not redis.call('ZSCORE', KEYS[3], num) then
    redis.call('ZADD', KEYS[3], idle, num)
  end
end
redis.call('HSET', KEYS[7], 'synced', 1)
return k
