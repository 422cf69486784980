-- inspect_sends: the contact's send record, read with the Redis server
-- clock (the one reserve_send uses). Changes nothing.
-- KEYS[1] = <prefix>{<digest>}:send (cd = cooldown end, n = sends,
--   we = window end, ms)
-- Returns {0, 0, 0, 0} when there is no record, else
-- {1, sends in the window, ms left in the window, ms left in the cooldown}.
local h = redis.call('HMGET', KEYS[1], 'cd', 'n', 'we')
local we = tonumber(h[3])
if not we then
  return {0, 0, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cd = tonumber(h[1]) or 0
local n = tonumber(h[2]) or 0
local window_left = 0
if we > now then
  window_left = we - now
else
  n = 0
end
return {1, n, window_left, math.max(cd - now, 0)}
