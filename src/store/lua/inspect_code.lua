-- inspect_code: the live code's time left and attempts used (never the
-- record itself: no hash, no salt). Changes nothing.
-- KEYS[1] = <prefix>{<digest>}:code
-- Returns {0, 0, 0} when there is no live code, else {1, ms left, used}.
if redis.call('HEXISTS', KEYS[1], 'rec') == 0 then
  return {0, 0, 0}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return {0, 0, 0}
end
if ttl < 0 then
  ttl = 0
end
local used = tonumber(redis.call('HGET', KEYS[1], 'att')) or 0
return {1, ttl, used}
