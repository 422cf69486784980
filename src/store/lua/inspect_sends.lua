-- inspect_sends: the contact's send record, read with the Redis server
-- clock (the one reserve_send uses). Changes nothing.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua: cd = cooldown end,
--   n = sends, we = window end, ms)
-- Returns {0, 0, 0, 0} when there is no record (or its cooldown and window
-- have both ended), else
-- {1, sends in the window, ms left in the window, ms left in the cooldown}.
local h = redis.call('HMGET', KEYS[1], 'cd', 'n', 'we')
local we = tonumber(h[3])
if not we then
  return {0, 0, 0, 0}
end
local now = now_ms()
local cd = tonumber(h[1]) or 0
if math.max(cd, we) <= now then
  return {0, 0, 0, 0}
end
local n = tonumber(h[2]) or 0
local window_left = 0
if we > now then
  window_left = we - now
else
  n = 0
end
return {1, n, window_left, math.max(cd - now, 0)}
