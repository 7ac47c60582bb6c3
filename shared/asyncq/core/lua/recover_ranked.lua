-- RECOVER_RANKED: RECOVER for a priority queue: only if the consumer's heartbeat has expired, move up to about
-- `limit` envelopes of its processing list and hash, attempts bumped, back to the head of their priority;
-- unregister it once both are empty; publish 'ready' when nothing was waiting.
-- KEYS: heartbeat, processing, ranked, consumers, totals, channel, seq, held
-- ARGV: consumer id, limit
-- Reply: how many moved, or -1 if the consumer is alive
-- flags: allow-oom
-- uses: bump, rank, take_back
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local waiting = redis.call('ZCARD', KEYS[3])
local moved = take_back(KEYS[2], KEYS[8], tonumber(ARGV[2]), function(env)
  rank(KEYS[3], KEYS[7], bump(env), true)
end)
if redis.call('EXISTS', KEYS[2], KEYS[8]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
if moved > 0 then redis.call('HINCRBY', KEYS[5], F.recovered, moved) end
if moved > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[6], 'ready') end
return moved
