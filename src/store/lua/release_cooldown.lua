-- release_cooldown: end the cooldown now but keep the send count and the
-- window (the key then expires at the latest end of what remains).
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
local now = now_ms()
if redis.call('HEXISTS', KEYS[1], 'we') == 1 then
  redis.call('HSET', KEYS[1], 'cd', 0)
  settle(KEYS[1], now)
  return 1
end
return 0
