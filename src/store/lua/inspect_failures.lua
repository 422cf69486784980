-- inspect_failures: the contact's failure record, read with the Redis
-- server clock (the one record_failure uses). Changes nothing.
-- KEYS[1] = <prefix>{<digest>}:fail (n = failures, lu = locked until, ms)
-- Returns {0, 0, 0} when there is no record, else
-- {1, failures, ms left in the lock (0: not locked)}.
local h = redis.call('HMGET', KEYS[1], 'n', 'lu')
local n = tonumber(h[1])
if not n then
  return {0, 0, 0}
end
local lu = tonumber(h[2]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {1, n, math.max(lu - now, 0)}
