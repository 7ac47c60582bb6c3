-- FETCH_RANKED: FETCH for a priority queue: promote due retries and delayed puts to the head of their
-- priority, claim up to `count` envelopes of the lowest priorities (the member's sequence prefix stripped)
-- into the consumer's processing hash, or list, as FETCH does; publish 'space' if a producer waits for room.
-- KEYS: ranked, processing, delayed, full, channel, seq, held
-- ARGV: count
-- Reply: {{id, envelope, ...} held, {value...} listed, in the order taken; next due time in ms or false, now,
--        how many still wait}
-- flags: allow-oom
-- uses: now, push, rank, hold
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
if #due > 0 then
  for i = 1, #due do rank(KEYS[1], KEYS[6], due[i], true) end
  push('ZREM', KEYS[3], due, 1, #due)
end
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local got = {}
for i = 1, #popped, 2 do got[#got + 1] = string.sub(popped[i], 17) end
local held, listed = {}, {}
if #got > 0 then
  hold(got, KEYS[7], KEYS[2], held, listed)
  if redis.call('DEL', KEYS[4]) == 1 then redis.call('SPUBLISH', KEYS[5], 'space') end
end
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {held, listed, nxt[2] or false, now, redis.call('ZCARD', KEYS[1])}
