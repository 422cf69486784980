-- block_sends: block sends to the contact until now + block (a "this
-- wasn't me" cancel), in its send record so that the operator's unlock
-- (DEL of the record) lifts it. Never shortens a running cooldown.
-- KEYS[1] = <prefix>{<digest>}:send (cd = cooldown end, n = sends,
--   we = window end, ms)
-- ARGV[1] = block (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'cd', 'n', 'we')
local cd = math.max(tonumber(h[1]) or 0, now + tonumber(ARGV[1]))
local n = tonumber(h[2]) or 0
local we = tonumber(h[3]) or now
redis.call('HSET', KEYS[1], 'cd', string.format('%d', cd), 'n', n, 'we', string.format('%d', we))
redis.call('PEXPIRE', KEYS[1], math.max(math.max(cd, we) - now, 1))
return 1
