-- consume_code: the success path. Delete the code only if the live one
-- still has this salt (single use), and then the contact's failure record
-- (a success resets the failure budget). The send record stays.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- KEYS[2] = <prefix>{<digest>}:fail (same hash tag: same cluster slot)
-- ARGV[1] = the 16-byte salt, ARGV[2] = the purpose's field suffix
local now = now_ms()
local p = ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'rec' .. p, 'exp' .. p)
if h[1] and (tonumber(h[2]) or 0) > now and string.sub(h[1], 1, 16) == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'rec' .. p, 'att' .. p, 'exp' .. p)
  settle(KEYS[1], now)
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
