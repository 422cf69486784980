-- release_cooldown: end the cooldown now but keep the send count and the
-- window (the key then expires at the latest end of what remains). A send
-- block (bk, see block_sends) that began while the send was in flight stays.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'we', 'bk')
if h[1] and not h[2] then
  redis.call('HSET', KEYS[1], 'cd', 0)
  settle(KEYS[1], now)
  return 1
end
return 0
