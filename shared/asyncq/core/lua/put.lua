-- PUT: push as many envelopes as fit under maxsize (oldest first in line) and count them unfinished; set
-- `full` when some did not fit. A batch whose seq the producer key already holds was applied before and its
-- reply lost: nothing is pushed again. The producer key keeps "seq:pushed" for an hour after the last put.
-- With a sixth key (the channel of a sharded queue, whose consumers wait on it rather than on a blocking pop),
-- publish 'ready' when the queue was empty.
-- KEYS: queue, unfinished, full, totals, producer[, channel]
-- ARGV: maxsize (0: none), batch seq, envelope...
-- Reply: how many were pushed
-- uses: push
local last = redis.call('GET', KEYS[5])
if last then
  local seq, pushed = string.match(last, '^(%d+):(%d+)$')
  if seq == ARGV[2] then return tonumber(pushed) end
end
local total = #ARGV - 2
local room = total
local maxsize = tonumber(ARGV[1])
local waiting = -1
if maxsize > 0 or KEYS[6] then waiting = redis.call('LLEN', KEYS[1]) end
if maxsize > 0 then room = math.min(total, maxsize - waiting) end
if room > 0 then
  push('LPUSH', KEYS[1], ARGV, 3, room + 2)
  if waiting == 0 and KEYS[6] then redis.call('SPUBLISH', KEYS[6], 'ready') end
  redis.call('INCRBY', KEYS[2], room)
  redis.call('HINCRBY', KEYS[4], F.enqueued, room)
else
  room = 0
end
if room < total then redis.call('SET', KEYS[3], '1', 'PX', 30000) end
redis.call('SET', KEYS[5], ARGV[2] .. ':' .. room, 'EX', 3600)
return room
