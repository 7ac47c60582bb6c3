-- SHUTDOWN: shut the queue (this shard of it) down: puts are refused from now on. With `immediate`, the
-- items still waiting or scheduled are dropped and count as done for join() (their keys forgotten); items
-- claimed by consumers stay theirs. Publishes 'shutdown' so idle consumers look at once.
-- KEYS: shutdown, waiting (queue list or ranked zset), delayed, unfinished, totals, channel, keys, keys-done
-- ARGV: mode (drain/immediate), kind
-- Reply: how many items were dropped
-- flags: allow-oom
-- uses: now, finished, free_key
local current = redis.call('GET', KEYS[1])
if current ~= 'immediate' then redis.call('SET', KEYS[1], ARGV[1]) end
local dropped = 0
if ARGV[1] == 'immediate' then
  local ranked = ARGV[2] == 'priority'
  local keyed = redis.call('HLEN', KEYS[7]) > 0
  local now = now_ms()
  local waiting
  if ranked then waiting = redis.call('ZRANGE', KEYS[2], 0, -1) else waiting = redis.call('LRANGE', KEYS[2], 0, -1) end
  local scheduled = redis.call('ZRANGE', KEYS[3], 0, -1)
  if keyed then
    for i = 1, #waiting do
      local env = waiting[i]
      if ranked then env = string.sub(env, 17) end
      free_key(KEYS[7], KEYS[8], env, now)
    end
    for i = 1, #scheduled do free_key(KEYS[7], KEYS[8], scheduled[i], now) end
  end
  dropped = #waiting + #scheduled
  redis.call('DEL', KEYS[2], KEYS[3])
  if dropped > 0 then
    redis.call('HINCRBY', KEYS[5], F.dropped, dropped)
    finished(KEYS[4], KEYS[6], dropped)
  end
end
redis.call('SPUBLISH', KEYS[6], 'shutdown')
return dropped
