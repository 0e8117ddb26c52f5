-- Take a slot on the first candidate that fits. Atomic: Redis runs a script with nothing interleaved.
--
-- KEYS[1]         holder key of the new lease ({prefix}lease:{id}), a string with the holder label
-- KEYS[2]         index of account ids seen ({prefix}accts), KEYS[3] index of provider ids ({prefix}provs)
-- KEYS[4 + 2i]    candidate i's account set ({prefix}acct:{id}): lease id -> expiry (ms), i = 0, 1, ...
-- KEYS[5 + 2i]    candidate i's provider set ({prefix}prov:{id})
-- ARGV[1]         lease id, ARGV[2] ttl (ms), ARGV[3] holder label
-- ARGV[4 + 4i]    candidate i's account id, ARGV[5 + 4i] provider id,
-- ARGV[6 + 4i]    account max, ARGV[7 + 4i] provider max (-1: no cap)
-- Returns the index of the candidate that got the lease, or -1 when none has room.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local keep = 2 * ttl

-- Keys vanish 2 x ttl after their last use, so an abandoned ledger leaves nothing behind. Never shorten a
-- key's life: another instance may run with a longer ttl.
local function keep_alive(key)
  if redis.call('PTTL', key) < keep then
    redis.call('PEXPIRE', key, keep)
  end
end

local n = (#KEYS - 3) / 2
for i = 0, n - 1 do
  local account_key, provider_key = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local account_max, provider_max = tonumber(ARGV[6 + 4 * i]), tonumber(ARGV[7 + 4 * i])
  if account_max > 0 and provider_max ~= 0 then
    redis.call('ZREMRANGEBYSCORE', account_key, '-inf', now)
    if redis.call('ZCARD', account_key) < account_max then
      redis.call('ZREMRANGEBYSCORE', provider_key, '-inf', now)
      if provider_max < 0 or redis.call('ZCARD', provider_key) < provider_max then
        local id = ARGV[1]
        redis.call('ZADD', account_key, now + ttl, id)
        redis.call('ZADD', provider_key, now + ttl, id)
        keep_alive(account_key)
        keep_alive(provider_key)
        redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
        redis.call('SADD', KEYS[2], ARGV[4 + 4 * i])
        redis.call('SADD', KEYS[3], ARGV[5 + 4 * i])
        keep_alive(KEYS[2])
        keep_alive(KEYS[3])
        return i
      end
    end
  end
end
return -1
