-- FETCH: promote due retries to the head of the line, move up to `count` envelopes from the head into the
-- consumer's processing list, publish 'space' if a producer waits for room.
-- KEYS: queue, processing, delayed, full, channel
-- ARGV: count
-- Reply: {envelopes oldest first, next due time in ms or false, now in ms}
-- flags: allow-oom
-- uses: now, push
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
if #due > 0 then
  for i = #due, 1, -1 do redis.call('RPUSH', KEYS[1], due[i]) end
  push('ZREM', KEYS[3], due, 1, #due)
end
local got = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not got then got = {} end
if #got > 0 then
  push('LPUSH', KEYS[2], got, 1, #got)
  if redis.call('DEL', KEYS[4]) == 1 then redis.call('SPUBLISH', KEYS[5], 'space') end
end
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {got, nxt[2] or false, now}
