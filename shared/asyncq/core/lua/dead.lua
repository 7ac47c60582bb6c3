-- DEAD: if the value is still ours (by its handle in the processing hash or list: see lib.lua's unhold), move it
-- to the dead letters as `record`; when counted (an envelope put through the queue), it is done for join().
-- With the keys and keys-done keys, the item's idempotency key is forgotten (or kept for its dedup_ttl).
-- KEYS: processing, dead, unfinished, totals, channel, held[, keys, keys-done]
-- ARGV: handle, record, counted (1/0), failed (1/0)
-- Reply: 1, or 0 if recovery had taken it back
-- flags: allow-oom
-- uses: finished, now, free_key, unhold
local env = unhold(ARGV[1], KEYS[6], KEYS[1])
if not env then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[4], F.dead, 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], F.failed, 1) end
if ARGV[3] == '1' then finished(KEYS[3], KEYS[5], 1) end
if KEYS[7] then free_key(KEYS[7], KEYS[8], env, now_ms()) end
return 1
