-- FETCH: promote due retries to the head of the line, claim up to `count` envelopes from the head into the
-- consumer's processing hash (id -> envelope: acknowledged by id, whatever the payload's size), publish
-- 'space' if a producer waits for room. A value without an id (not an envelope) or a second copy of an item
-- the hash already holds goes to the consumer's processing list instead, known by its text.
-- KEYS: queue, processing, delayed, full, channel, held
-- ARGV: count
-- Reply: {{id, envelope, ...} held, {value...} listed, oldest first; next due time in ms or false, now in ms,
--        how many still wait}
-- flags: allow-oom
-- uses: now, push, hold
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
if #due > 0 then
  for i = #due, 1, -1 do redis.call('RPUSH', KEYS[1], due[i]) end
  push('ZREM', KEYS[3], due, 1, #due)
end
local got = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
local held, listed = {}, {}
if got then
  hold(got, KEYS[6], KEYS[2], held, listed)
  if redis.call('DEL', KEYS[4]) == 1 then redis.call('SPUBLISH', KEYS[5], 'space') end
end
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {held, listed, nxt[2] or false, now, redis.call('LLEN', KEYS[1])}
