-- gcra: one request against a GCRA limiter (per-IP limits shared by every
-- instance). Times come from the Redis server clock.
-- KEYS[1] = <prefix>{rl:<name>:<ip>}, a string: the theoretical arrival time (ms)
-- ARGV[1] = emission interval T (ms), ARGV[2] = burst (requests)
-- Returns {1, remaining, reset_ms} when allowed, {0, retry_ms, reset_ms} when not.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval
local limit = burst * interval
if new_tat - now > limit then
  return {0, new_tat - limit - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(new_tat - now, 1))
return {1, math.floor((now + limit - new_tat) / interval), new_tat - now}
