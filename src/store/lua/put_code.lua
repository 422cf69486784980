-- put_code: store a new code record with a fresh attempt count, replacing
-- any previous code, expiring after ARGV[2] milliseconds.
-- KEYS[1] = <prefix>{<digest>}:code
-- ARGV[1] = the record bytes (salt | secret id | hash)
-- ARGV[2] = ttl in milliseconds (>= 1)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'att', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
