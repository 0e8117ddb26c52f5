-- An attempt counted by login_attempt.lua did not fail (right password, or the check could not run): it no
-- longer counts, and an address below the limit again is not blocked.
-- KEYS[1] the address's record; ARGV[1] the window start the attempt counted in, ARGV[2] the attempts that block.
-- Returns 1 when forgiven, 0 when its window is over (nothing to forgive).
local v = redis.call('HMGET', KEYS[1], 'start', 'n')
if tonumber(v[1]) ~= tonumber(ARGV[1]) then
  return 0
end
local n = math.max((tonumber(v[2]) or 0) - 1, 0)
redis.call('HSET', KEYS[1], 'n', n)
if n < tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], 'until')
end
return 1
