-- record_failure: count one wrong code against the contact's failure
-- budget; once the budget is used up, lock the contact. Times come from the
-- Redis server clock.
-- KEYS[1] = <prefix>{<digest>}:fail, a hash:
--   n = consecutive failures, lu = locked until (ms)
-- ARGV[1] = budget (failures that lock), ARGV[2] = first lock (ms),
-- ARGV[3] = longest lock (ms), ARGV[4] = keep the record (ms after this failure)
-- Returns {failures, lock ms (0: not locked), 1 if a lock was in force}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local first = tonumber(ARGV[2])
local longest = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])

local lu = tonumber(redis.call('HGET', KEYS[1], 'lu') or '0') or 0
local was = 0
if lu > now then was = 1 end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local lock = 0
if n >= limit then
  local beyond = math.min(n - limit, 31)
  lock = math.min(first * math.pow(2, beyond), longest)
  redis.call('HSET', KEYS[1], 'lu', string.format('%d', now + lock))
end
redis.call('PEXPIRE', KEYS[1], math.max(keep, lock, 1))
return {n, lock, was}
