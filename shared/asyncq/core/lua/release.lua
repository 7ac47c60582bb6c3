-- RELEASE: give every item of the processing list and hash not listed back to the head of the line, unbumped
-- (a consumer returning what it has not started).
-- KEYS: processing, queue, held[, channel: publish 'ready' when the queue was empty, as PUT does]
-- ARGV: handle to keep (see lib.lua's unhold)...
-- Reply: how many went back
-- flags: allow-oom
-- uses: give_back
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local waiting = KEYS[4] and redis.call('LLEN', KEYS[2]) or -1
local given = give_back(KEYS[1], KEYS[3], keep, function(env) redis.call('RPUSH', KEYS[2], env) end)
if given > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[4], 'ready') end
return given
