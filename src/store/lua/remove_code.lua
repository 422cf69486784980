-- remove_code: delete the code only if the live one still has this salt
-- (single use: of many callers holding the same record, exactly one gets 1).
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- ARGV[1] = the 16-byte salt, ARGV[2] = the purpose's field suffix
local now = now_ms()
local p = ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'rec' .. p, 'exp' .. p)
if h[1] and (tonumber(h[2]) or 0) > now and string.sub(h[1], 1, 16) == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'rec' .. p, 'att' .. p, 'exp' .. p)
  settle(KEYS[1], now)
  return 1
end
return 0
