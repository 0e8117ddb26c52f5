-- How many streams a downstream user holds across the cluster (expired leases are not counted).
-- KEYS[1] the user's leases (see user_claim.lua). Returns the count.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
