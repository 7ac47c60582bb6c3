-- RELEASE: give every envelope of the processing list not listed back to the head of the line, unbumped and
-- in order (a consumer returning what it has not started).
-- KEYS: processing, queue[, channel: publish 'ready' when the queue was empty, as PUT does]
-- ARGV: envelope to keep...
-- Reply: how many went back
-- flags: allow-oom
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local held = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = {}
local given = 0
local waiting = KEYS[3] and redis.call('LLEN', KEYS[2]) or -1
for i = 1, #held do
  if keep[held[i]] then
    kept[#kept + 1] = held[i]
  else
    redis.call('RPUSH', KEYS[2], held[i])
    given = given + 1
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept do redis.call('RPUSH', KEYS[1], kept[i]) end
if given > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[3], 'ready') end
return given
