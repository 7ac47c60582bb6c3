-- LOCK: take the lock if it is free, for `ttl` ms.
-- KEYS: lock
-- ARGV: token, ttl ms
-- Reply: 1 if taken, else 0
-- flags: allow-oom
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
