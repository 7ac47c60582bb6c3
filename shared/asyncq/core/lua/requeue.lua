-- REQUEUE: if the record is still a dead letter, remove it and put its envelope at the end of the line,
-- counted unfinished.
-- KEYS: dead, queue, unfinished, totals[, channel: publish 'ready' when the queue was empty]
-- ARGV: record, envelope
-- Reply: 1, or 0 if the record is gone
-- flags: allow-oom
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if KEYS[5] and redis.call('LLEN', KEYS[2]) == 0 then redis.call('SPUBLISH', KEYS[5], 'ready') end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[3])
redis.call('HINCRBY', KEYS[4], F.enqueued, 1)
return 1
