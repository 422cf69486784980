-- block_sends: block sends to the contact until now + block (a "this
-- wasn't me" cancel), in its send record so that the operator's unlock
-- (clear_sends) lifts it. Never shortens a running cooldown. bk marks the
-- cooldown as a block: release_cooldown (a failed delivery) leaves it.
-- KEYS[1] = <prefix>{<digest>} (see contact.lua: cd = cooldown end,
--   n = sends, we = window end, ms)
-- ARGV[1] = block (ms)
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'cd', 'n', 'we')
local cd = math.max(tonumber(h[1]) or 0, now + tonumber(ARGV[1]))
local n = tonumber(h[2]) or 0
local we = tonumber(h[3]) or now
redis.call('HSET', KEYS[1], 'cd', string.format('%d', cd), 'n', n, 'we', string.format('%d', we), 'bk', 1)
settle(KEYS[1], now)
return 1
