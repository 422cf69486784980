-- consume_code: the success path. Delete the code only if the live one
-- still has this salt (single use), and then the contact's failure record
-- (a success resets the failure budget).
-- KEYS[1] = <prefix>{<digest>}:code
-- KEYS[2] = <prefix>{<digest>}:fail (same hash tag: same cluster slot)
-- ARGV[1] = the 16-byte salt
local rec = redis.call('HGET', KEYS[1], 'rec')
if rec and string.sub(rec, 1, 16) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
