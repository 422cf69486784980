-- begin_attempt: take one attempt from the live code.
-- KEYS[1] = <prefix>{<digest>}:code
-- ARGV[1] = max attempts
-- Returns {0, '', 0} when there is no live code (Redis expired it, or it was
-- used or destroyed), {1, '', used} when every attempt is taken, and
-- {2, record, used} when this call took attempt number `used`.
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
