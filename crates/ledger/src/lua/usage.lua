-- Count live leases per account and per provider (not cooling slots), dropping expired ones on the way.
--
-- KEYS[1] account index ({prefix}accts), KEYS[2] provider index ({prefix}provs)
-- ARGV[1] prefix
-- Returns { {account id, count, ...}, {provider id, count, ...} }, all as strings, only non-zero counts.
-- The per-id set keys are derived from the prefix, which is fine on a single Redis (not on a cluster).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function count(index, kind)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', index)) do
    local key = ARGV[1] .. kind .. id
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    -- Cooling slots of released leases ('<lease id>:cooling') block acquires but are no lease.
    local c = 0
    for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
      if not string.find(member, ':cooling', 1, true) then
        c = c + 1
      end
    end
    if c > 0 then
      out[#out + 1] = id
      out[#out + 1] = tostring(c)
    elseif redis.call('ZCARD', key) == 0 then
      redis.call('SREM', index, id)
    end
  end
  return out
end

return { count(KEYS[1], 'acct:'), count(KEYS[2], 'prov:') }
