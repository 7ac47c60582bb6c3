-- RELEASE_RANKED: RELEASE for a priority queue: give every item of the processing list and hash not listed
-- back to the head of its priority, unbumped.
-- KEYS: processing, ranked, channel, seq, held
-- ARGV: handle to keep (see lib.lua's unhold)...
-- Reply: how many went back
-- flags: allow-oom
-- uses: rank, give_back
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local waiting = redis.call('ZCARD', KEYS[2])
local given = give_back(KEYS[1], KEYS[5], keep, function(env) rank(KEYS[2], KEYS[4], env, true) end)
if given > 0 and waiting == 0 then redis.call('SPUBLISH', KEYS[3], 'ready') end
return given
