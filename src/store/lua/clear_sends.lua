-- clear_sends: delete the contact's send record (the operator's unlock:
-- cooldown, quota and any send block). Its pending codes stay.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- Returns 1 when a live send record was deleted, 0 when there was none.
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'cd', 'we')
local live = h[2] and math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0) > now
if redis.call('HDEL', KEYS[1], 'cd', 'n', 'we', 'bk') > 0 then
  settle(KEYS[1], now)
end
if live then
  return 1
end
return 0
