-- Compare-and-delete: drop an ownership record only if it is still ours (an expired record may already be
-- another instance's, which must keep it).
-- KEYS[1] the owner key; ARGV[1] our value. Returns 1 when deleted, 0 when it was not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
