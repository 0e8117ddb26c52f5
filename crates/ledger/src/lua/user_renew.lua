-- Renew a downstream user's stream lease.
-- KEYS[1], KEYS[2] as in user_claim.lua; ARGV[1] the lease id, ARGV[2] the TTL in ms, ARGV[3] the user's limit
-- (0: none), ARGV[4] what the stream is.
-- Returns 1 when renewed; 2 when the lease was gone (Redis lost it: restarted empty) and there was room to take
-- it again; 0 when it is gone and the user's slots are taken (it was replaced by a newer stream, or it expired
-- and another stream took the slot): the holder must end the stream.
-- After user_sweep.lua: now, ttl, max, and the expired leases gone.
local answer = 0
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
  answer = 1
elseif max == 0 or redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], now .. ' ' .. ARGV[4])
  answer = 2
else
  return 0
end
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return answer
