-- RECOVER: only if the consumer's heartbeat has expired, move up to `limit` envelopes of its processing list,
-- attempts bumped, back to the head of the line (oldest first); unregister it once its list is empty.
-- KEYS: heartbeat, processing, queue, consumers, totals[, channel: publish 'ready' when the queue was empty]
-- ARGV: consumer id, limit
-- Reply: how many moved, or -1 if the consumer is alive
-- flags: allow-oom
-- uses: bump
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
local waiting = KEYS[6] and redis.call('LLEN', KEYS[3]) or -1
local limit = tonumber(ARGV[2])
while moved < limit do
  local env = redis.call('LPOP', KEYS[2])
  if not env then break end
  redis.call('RPUSH', KEYS[3], bump(env))
  moved = moved + 1
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
if moved > 0 then redis.call('HINCRBY', KEYS[5], F.recovered, moved) end
if moved > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[6], 'ready') end
return moved
