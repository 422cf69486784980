-- contact.lua: put in front of every script on a contact's key,
-- <prefix>{<digest>}, one hash holding the contact's pending codes and its
-- send record (one key per contact: Redis's own cost per key is paid once).
-- Fields (times in ms on the Redis server clock):
--   rec<p> = code record (salt | secret id | hash), att<p> = attempts used,
--   exp<p> = the code's expiry; <p> is '' for the default purpose and
--   ':<purpose>' for the others (the scripts get it as an argument);
--   cd = cooldown end, n = sends in the window, we = window end, bk = 1
--   while the cooldown is a send block (block_sends).
-- A code whose exp has passed is treated as missing, and a send record
-- whose cooldown and window have both ended as missing, by every script
-- (no HEXPIRE before Redis 7.4: the key's own expiry is the latest end).

-- The Redis server's clock, in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- After a write: drops the parts that have ended (codes past exp, a send
-- record past its cooldown and window), then sets the key's expiry to the
-- latest end of what remains, or deletes the key when nothing remains.
local function settle(key, now)
  local h = redis.call('HGETALL', key)
  local v = {}
  for i = 1, #h, 2 do
    v[h[i]] = h[i + 1]
  end
  local last = 0
  local drop = {}
  for i = 1, #h, 2 do
    local f = h[i]
    if string.sub(f, 1, 3) == 'exp' then
      local e = tonumber(h[i + 1]) or 0
      if e > now then
        last = math.max(last, e)
      else
        local p = string.sub(f, 4)
        drop[#drop + 1] = 'rec' .. p
        drop[#drop + 1] = 'att' .. p
        drop[#drop + 1] = f
      end
    end
  end
  if v['we'] or v['cd'] then
    local e = math.max(tonumber(v['cd']) or 0, tonumber(v['we']) or 0)
    if e > now then
      last = math.max(last, e)
    else
      drop[#drop + 1] = 'cd'
      drop[#drop + 1] = 'n'
      drop[#drop + 1] = 'we'
      drop[#drop + 1] = 'bk'
    end
  end
  if last <= now then
    redis.call('DEL', key)
    return
  end
  if #drop > 0 then
    redis.call('HDEL', key, unpack(drop))
  end
  redis.call('PEXPIRE', key, last - now)
end

