-- Register (or renew) one instance: a hash with its id, URL, start time and, when given, its status (what it
-- publishes for the cluster's views: its sessions), expiring after the TTL; and its id in the index of
-- instances, scored by that expiry, so that the instances can be listed without SCAN.
-- KEYS[1] the instance key, KEYS[2] the index; ARGV[1] id, ARGV[2] url, ARGV[3] started_at (unix s),
-- ARGV[4] the TTL in ms, ARGV[5] the status ("" for none yet).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'url', ARGV[2], 'started_at', ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[5], 'status_at', now)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return 1
