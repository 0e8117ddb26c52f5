-- Renew an ownership record, only if it is still ours.
-- KEYS[1] the owner key; ARGV[1] our value, ARGV[2] the TTL in ms. Returns 1 when renewed, 0 when not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
