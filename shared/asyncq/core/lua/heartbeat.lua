-- HEARTBEAT: set the consumer's heartbeat (JSON) with its TTL and register the consumer.
-- KEYS: heartbeat, consumers
-- ARGV: info, ttl ms, consumer id, first (1/0)
-- Reply: 0 if the heartbeat had expired since the last beat (it is set again), else 1
-- flags: allow-oom
local alive = 1
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  alive = 0
end
redis.call('SADD', KEYS[2], ARGV[3])
return alive
