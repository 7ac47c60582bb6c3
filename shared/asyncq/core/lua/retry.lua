-- RETRY: if the item is still ours (by its handle in the processing hash or list: see lib.lua's unhold), bump its
-- attempts and schedule it `delay` ms from now (Redis's clock). A byte-identical twin already scheduled
-- absorbs it: the copy is then done for join().
-- KEYS: processing, delayed, totals, unfinished, channel, held
-- ARGV: handle, delay ms
-- Reply: 1, or 0 if recovery had taken it back
-- flags: allow-oom
-- uses: now, bump, finished, unhold
local env = unhold(ARGV[1], KEYS[6], KEYS[1])
if not env then return 0 end
if redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), bump(env)) == 0 then
  finished(KEYS[4], KEYS[5], 1)
end
redis.call('HINCRBY', KEYS[3], F.retried, 1)
redis.call('HINCRBY', KEYS[3], F.failed, 1)
return 1
