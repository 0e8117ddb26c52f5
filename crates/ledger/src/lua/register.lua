-- Register (or renew) one instance: a hash with its id, URL and start time, expiring after the TTL.
-- KEYS[1] the instance key; ARGV[1] id, ARGV[2] url, ARGV[3] started_at (unix s), ARGV[4] the TTL in ms.
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'url', ARGV[2], 'started_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
