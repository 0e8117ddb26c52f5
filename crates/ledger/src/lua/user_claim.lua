-- Claim one of a downstream user's stream slots across the cluster.
-- KEYS[1] the user's leases: a sorted set, lease id -> expiry (ms, Redis time);
-- KEYS[2] what each lease is: a hash, lease id -> "{start ms} {what}".
-- ARGV[1] the new lease id, ARGV[2] the TTL in ms, ARGV[3] the user's limit (0: none of its own),
-- ARGV[4] "1" to end the user's oldest stream(s) when at the limit ("0": refuse), ARGV[5] what the stream is.
-- Returns {1, replaced lease ids...} when granted, {0, what the user watches (oldest first)...} when refused.
-- After user_sweep.lua: now, ttl, max, and the expired leases gone.
-- The held leases, oldest first.
local function held()
  local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
  local list = {}
  for _, id in ipairs(ids) do
    local info = redis.call('HGET', KEYS[2], id) or ''
    local start, what = string.match(info, '^(%d+) (.*)$')
    table.insert(list, {id, tonumber(start) or 0, what or ''})
  end
  table.sort(list, function(a, b) if a[2] == b[2] then return a[1] < b[1] end return a[2] < b[2] end)
  return list
end
local replaced = {1}
if max > 0 and ARGV[4] == '1' then
  local list = held()
  local excess = #list + 1 - max
  for i = 1, excess do
    redis.call('ZREM', KEYS[1], list[i][1])
    redis.call('HDEL', KEYS[2], list[i][1])
    table.insert(replaced, list[i][1])
  end
end
if max == 0 or redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], now .. ' ' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  redis.call('PEXPIRE', KEYS[2], 2 * ttl)
  return replaced
end
local refused = {0}
for _, h in ipairs(held()) do
  table.insert(refused, h[3])
end
return refused
