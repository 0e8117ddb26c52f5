-- Give a downstream user's stream slot back (idempotent).
-- KEYS[1], KEYS[2] as in user_claim.lua; ARGV[1] the lease id. Returns 1 when it was held.
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
