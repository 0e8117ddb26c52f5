-- Give a lease back. Idempotent. With a cool-down, the slot stays taken a little longer under another member
-- (the lease itself is gone: renewing it fails), because the provider may still count the closed connection.
--
-- KEYS[1] holder key ({prefix}lease:{id}), KEYS[2] account set, KEYS[3] provider set
-- ARGV[1] lease id, ARGV[2] the member its slot cools down as, ARGV[3] cool-down (ms, 0: none)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
local cooldown = tonumber(ARGV[3])
if expiry and cooldown > 0 and tonumber(expiry) > now then
  local until_ms = math.min(tonumber(expiry), now + cooldown)
  redis.call('ZADD', KEYS[2], until_ms, ARGV[2])
  redis.call('ZADD', KEYS[3], until_ms, ARGV[2])
end
return 1
