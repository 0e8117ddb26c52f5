-- Every registered instance with what it published: {id, url, started_at, status, status age in ms, ...}, five
-- strings per live instance (an empty status when it published none). Expired instances are dropped from the
-- index (their hashes expired by themselves).
-- KEYS[1] the index; ARGV[1] the instance keys' prefix.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'id', 'url', 'started_at', 'status', 'status_at')
  if v[1] then
    local age = ''
    if v[5] then age = tostring(math.max(now - tonumber(v[5]), 0)) end
    table.insert(out, v[1])
    table.insert(out, v[2] or '')
    table.insert(out, v[3] or '0')
    table.insert(out, v[4] or '')
    table.insert(out, age)
  end
end
return out
