-- Functions the scripts share. The loader copies in those a script names on its "-- uses:" line.
-- F: the names of the counters in the totals hash, generated from asyncq's Python definition.

--- now
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

--- bump
-- Raise the attempts field every envelope begins with, editing the text in place: re-encoding with cjson
-- would turn an empty payload list into an object.
local function bump(env)
  local out = string.gsub(env, '^{"attempts":(%d+),', function(a)
    return '{"attempts":' .. (tonumber(a) + 1) .. ','
  end, 1)
  return out
end

--- push
-- unpack() is limited by the C stack: push in slices.
local function push(cmd, key, list, first, last)
  for i = first, last, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, last)))
  end
end

--- finished
-- n items are done for join(): lower unfinished, publish 'done' when nothing is left. The channel is a key of
-- the queue's slot (sharded pub/sub: on a cluster the message stays on the slot's shard).
local function finished(key, channel, n)
  local left = redis.call('DECRBY', key, n)
  if left <= 0 then
    if left < 0 then redis.call('SET', key, 0) end
    redis.call('SPUBLISH', channel, 'done')
  end
end
