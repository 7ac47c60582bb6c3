-- RECOVER: only if the consumer's heartbeat has expired, move up to about `limit` envelopes of its processing
-- list and hash (a list alone if an older version wrote it), attempts bumped, back to the head of the line;
-- unregister it once both are empty.
-- KEYS: heartbeat, processing, queue, consumers, totals, held[, channel: publish 'ready' when the queue was empty]
-- ARGV: consumer id, limit
-- Reply: how many moved, or -1 if the consumer is alive
-- flags: allow-oom
-- uses: bump, take_back
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local waiting = KEYS[7] and redis.call('LLEN', KEYS[3]) or -1
local moved = take_back(KEYS[2], KEYS[6], tonumber(ARGV[2]), function(env)
  redis.call('RPUSH', KEYS[3], bump(env))
end)
if redis.call('EXISTS', KEYS[2], KEYS[6]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
if moved > 0 then redis.call('HINCRBY', KEYS[5], F.recovered, moved) end
if moved > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[7], 'ready') end
return moved
