-- RELEASE_RANKED: RELEASE for a priority queue: give every envelope of the processing list not listed back
-- to the head of its priority, unbumped.
-- KEYS: processing, ranked, channel, seq
-- ARGV: envelope to keep...
-- Reply: how many went back
-- flags: allow-oom
-- uses: rank
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local held = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = {}
local given = 0
local waiting = redis.call('ZCARD', KEYS[2])
for i = 1, #held do
  if keep[held[i]] then
    kept[#kept + 1] = held[i]
  else
    rank(KEYS[2], KEYS[4], held[i], true)
    given = given + 1
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept do redis.call('RPUSH', KEYS[1], kept[i]) end
if given > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[3], 'ready') end
return given
