-- REQUEUE_RANKED: REQUEUE for a priority queue: if the record is still a dead letter, remove it and put its
-- envelope back after the items of its priority, counted unfinished.
-- KEYS: dead, ranked, unfinished, totals, channel, seq
-- ARGV: record, envelope
-- Reply: 1, or 0 if the record is gone
-- flags: allow-oom
-- uses: rank
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SPUBLISH', KEYS[5], 'ready') end
rank(KEYS[2], KEYS[6], ARGV[2], false)
redis.call('INCR', KEYS[3])
redis.call('HINCRBY', KEYS[4], F.enqueued, 1)
return 1
