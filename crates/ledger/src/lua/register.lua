-- Register (or renew) one instance: a hash with its id, URL, start time and, when given, its status (what it
-- publishes for the cluster's views: its sessions), expiring after the TTL; and its id in the index of
-- instances, scored by that expiry, so that the instances can be listed without SCAN.
-- KEYS[1] the instance key, KEYS[2] the index; ARGV[1] id, ARGV[2] url, ARGV[3] started_at (unix s),
-- ARGV[4] the TTL in ms, ARGV[5] the status ("" for none, or for the one already written), ARGV[6] the
-- status's version ("" when the instance publishes none).
-- With a status, it is written with its version and the time. With a version but no status, the status written
-- with that version is confirmed current: only its time is set and the record's expiry renewed (the status text,
-- however large, is not sent again); if the record holds another version or none (it expired, Redis restarted
-- empty), nothing is written and 0 is returned: the caller sends the whole status. 1 otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
if ARGV[5] == '' and ARGV[6] ~= '' then
  if redis.call('HGET', KEYS[1], 'status_version') ~= ARGV[6] then
    return 0
  end
  redis.call('HSET', KEYS[1], 'status_at', now)
else
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'url', ARGV[2], 'started_at', ARGV[3])
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'status', ARGV[5], 'status_at', now, 'status_version', ARGV[6])
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return 1
