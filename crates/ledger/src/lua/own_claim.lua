-- Claim the ownership of a channel's live session, unless someone holds it.
-- KEYS[1] the owner key; ARGV[1] our value ("instance session"), ARGV[2] the TTL in ms.
-- Returns {1, ARGV[1]} when claimed, {0, current} when another value holds it.
local current = redis.call('GET', KEYS[1])
if current then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
