-- Give a lease back. Idempotent.
--
-- KEYS[1] holder key ({prefix}lease:{id}), KEYS[2] account set, KEYS[3] provider set
-- ARGV[1] lease id
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
