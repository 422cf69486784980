-- begin_attempt: refuse while the contact is locked by its failure budget;
-- otherwise take one attempt from the live code.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- KEYS[2] = <prefix>{<digest>}:fail (same hash tag: same cluster slot)
-- ARGV[1] = max attempts, ARGV[2] = the purpose's field suffix
-- Returns {3, '', ms} while locked (ms left, no attempt taken), {0, '', 0}
-- when there is no live code (expired, used or destroyed), {1, '', used}
-- when every attempt is taken, and {2, record, used} when this call took
-- attempt number `used`.
local now = now_ms()
local lu = redis.call('HGET', KEYS[2], 'lu')
if lu then
  local locked_until = tonumber(lu)
  if locked_until and locked_until > now then
    return {3, '', locked_until - now}
  end
end
local p = ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'rec' .. p, 'att' .. p, 'exp' .. p)
local rec = h[1]
if not rec or (tonumber(h[3]) or 0) <= now then
  return {0, '', 0}
end
local used = tonumber(h[2]) or 0
if used >= tonumber(ARGV[1]) then
  return {1, '', used}
end
used = redis.call('HINCRBY', KEYS[1], 'att' .. p, 1)
return {2, rec, used}
