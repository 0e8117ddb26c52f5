-- Count one login attempt from a client address across the cluster, from its start (a check still running
-- counts as a failure until it is forgiven: login_forgive.lua).
-- KEYS[1] the address's record: a hash (start: the window's start in ms, n: attempts counted in it, until: the
-- end of its block in ms), expiring when neither its window nor its block matters any more.
-- ARGV[1] the attempts that block the address, ARGV[2] the window in ms, ARGV[3] the block in ms.
-- Returns {1, window start, attempts counted in it (this one included)} when the attempt may go on; {0, ms to
-- wait} when it is refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, window, block = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'start', 'n', 'until')
local start, n, blocked = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3])
if blocked and blocked > now then
  return {0, blocked - now}
end
if not start or now - start >= window then
  start = now
  n = 0
  redis.call('HDEL', KEYS[1], 'until')
end
if n >= max then
  return {0, math.max(start + window - now, 1)}
end
n = n + 1
redis.call('HSET', KEYS[1], 'start', start, 'n', n)
if n >= max then
  redis.call('HSET', KEYS[1], 'until', now + block)
end
redis.call('PEXPIRE', KEYS[1], window + block)
return {1, start, n}
