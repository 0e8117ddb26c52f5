-- Extend a live lease to now + ttl; a lease that is gone or expired stays gone.
--
-- KEYS[1] holder key ({prefix}lease:{id}), KEYS[2] account set, KEYS[3] provider set,
-- KEYS[4] account index, KEYS[5] provider index
-- ARGV[1] lease id, ARGV[2] ttl (ms)
-- Returns 1 when renewed, 0 when the lease no longer exists.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local keep = 2 * ttl
local id = ARGV[1]

local function keep_alive(key)
  if redis.call('PTTL', key) < keep then
    redis.call('PEXPIRE', key, keep)
  end
end

local score = redis.call('ZSCORE', KEYS[2], id)
if score and tonumber(score) > now then
  redis.call('ZADD', KEYS[2], 'XX', now + ttl, id)
  redis.call('ZADD', KEYS[3], 'XX', now + ttl, id)
  redis.call('PEXPIRE', KEYS[1], ttl)
  for k = 2, 5 do
    keep_alive(KEYS[k])
  end
  return 1
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('DEL', KEYS[1])
return 0
