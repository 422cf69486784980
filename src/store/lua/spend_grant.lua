-- spend_grant: record a single-use grant as spent, once.
-- KEYS[1] = <prefix>{<grant digest>}:spent
-- ARGV[1] = time to keep the mark (ms): the grant's remaining lifetime
-- Returns 1 the first time, 0 when the grant was already spent.
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
