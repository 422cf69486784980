-- inspect_code: the live code's time left and attempts used (never the
-- record itself: no hash, no salt). Changes nothing.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- ARGV[1] = the purpose's field suffix
-- Returns {0, 0, 0} when there is no live code, else {1, ms left, used}.
local now = now_ms()
local p = ARGV[1]
local h = redis.call('HMGET', KEYS[1], 'rec' .. p, 'att' .. p, 'exp' .. p)
local exp = tonumber(h[3]) or 0
if not h[1] or exp <= now then
  return {0, 0, 0}
end
return {1, exp - now, tonumber(h[2]) or 0}
