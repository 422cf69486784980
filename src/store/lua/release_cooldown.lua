-- release_cooldown: end the cooldown now but keep the send count and the
-- key's expiry (the window still runs).
-- KEYS[1] = <prefix>{<digest>}:send
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'cd', 0)
  return 1
end
return 0
