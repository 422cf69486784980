-- put_code: store a new code record with a fresh attempt count, replacing
-- any previous code of the same purpose, expiring after ARGV[2] ms.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua)
-- ARGV[1] = the record bytes (salt | secret id | hash)
-- ARGV[2] = ttl in milliseconds (>= 1)
-- ARGV[3] = the purpose's field suffix ('' or ':<purpose>')
local now = now_ms()
local p = ARGV[3]
redis.call('HSET', KEYS[1], 'rec' .. p, ARGV[1], 'att' .. p, 0,
  'exp' .. p, string.format('%d', now + tonumber(ARGV[2])))
settle(KEYS[1], now)
return 1
