-- reserve_send: check the cooldown and the quota, count this send, start
-- the cooldown. Times come from the Redis server clock, so every app
-- instance sharing this Redis agrees on them.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua: cd = cooldown end,
--   n = sends in the window, we = window end, ms)
-- ARGV[1] = cooldown (ms), ARGV[2] = quota, ARGV[3] = window (ms)
-- Returns {0, 0} granted, {1, ms} cooldown, {2, ms} quota exceeded.
local now = now_ms()
local cooldown = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local window = tonumber(ARGV[3])

local h = redis.call('HMGET', KEYS[1], 'cd', 'n', 'we', 'bk')
local cd = tonumber(h[1]) or 0
local n = tonumber(h[2]) or 0
local we = tonumber(h[3])

if we then
  if cd > now then
    return {1, cd - now}
  end
  if we <= now then
    n = 0
    we = now + window
  end
else
  n = 0
  we = now + window
end
if n >= quota then
  return {2, math.max(we - now, 1)}
end
n = n + 1
cd = now + cooldown
redis.call('HSET', KEYS[1], 'cd', string.format('%d', cd), 'n', n, 'we', string.format('%d', we))
if h[4] then
  -- A block that has ended: this cooldown is a send's own.
  redis.call('HDEL', KEYS[1], 'bk')
end
settle(KEYS[1], now)
return {0, 0}
