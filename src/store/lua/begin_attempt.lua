-- begin_attempt: refuse while the contact is locked by its failure budget;
-- otherwise take one attempt from the live code.
-- KEYS[1] = <prefix>{<digest>}:code
-- KEYS[2] = <prefix>{<digest>}:fail (same hash tag: same cluster slot)
-- ARGV[1] = max attempts
-- Returns {3, '', ms} while locked (ms left, no attempt taken), {0, '', 0}
-- when there is no live code (Redis expired it, or it was used or
-- destroyed), {1, '', used} when every attempt is taken, and
-- {2, record, used} when this call took attempt number `used`.
local lu = redis.call('HGET', KEYS[2], 'lu')
if lu then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local locked_until = tonumber(lu)
  if locked_until and locked_until > now then
    return {3, '', locked_until - now}
  end
end
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then
  return {0, '', 0}
end
local used = tonumber(redis.call('HGET', KEYS[1], 'att')) or 0
if used >= tonumber(ARGV[1]) then
  return {1, '', used}
end
used = redis.call('HINCRBY', KEYS[1], 'att', 1)
return {2, rec, used}
