-- remove_code: delete the code only if the live one still has this salt
-- (single use: of many callers holding the same record, exactly one gets 1).
-- KEYS[1] = <prefix>{<digest>}:code
-- ARGV[1] = the 16-byte salt
local rec = redis.call('HGET', KEYS[1], 'rec')
if rec and string.sub(rec, 1, 16) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
