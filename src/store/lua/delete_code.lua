-- delete_code: delete the pending code of one purpose, whatever it holds
-- (the admin API's cancel, the cancel link). The send record stays.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- ARGV[1] = the purpose's field suffix
-- Returns 1 when a live code was deleted, 0 when there was none.
local now = now_ms()
local p = ARGV[1]
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp' .. p))
if redis.call('HDEL', KEYS[1], 'rec' .. p, 'att' .. p, 'exp' .. p) > 0 then
  settle(KEYS[1], now)
end
if exp and exp > now then
  return 1
end
return 0
