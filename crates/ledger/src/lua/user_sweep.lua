-- Shared prelude of user_claim.lua and user_renew.lua (concatenated before each at load, crates/ledger/src/cluster.rs):
-- Redis's clock in ms, the TTL and limit from ARGV[2] and ARGV[3], and the user's expired leases (a dead
-- instance's) swept from KEYS[1] and KEYS[2].
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
