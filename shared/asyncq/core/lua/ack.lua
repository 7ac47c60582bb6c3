-- ACK: take each item out of the consumer's processing hash (by id) or list ('#' then the id) and count as
-- done only those actually taken (a late ack of an item that recovery took back counts nothing); publish
-- 'done' when nothing is unfinished. With the keys and keys-done keys (a batch holding an item put with an
-- idempotency key), forget the keys of the items taken (or remember them for their dedup_ttl).
-- KEYS: processing, unfinished, totals, channel, held[, keys, keys-done]
-- ARGV: handle...
-- Reply: how many were taken
-- flags: allow-oom
-- uses: finished, now, free_key, unhold
local removed = 0
local now = KEYS[6] and now_ms()
for i = 1, #ARGV do
  local handle = ARGV[i]
  local first = string.byte(handle, 1)
  if now or first == 35 or first == 61 then
    local env = unhold(handle, KEYS[5], KEYS[1])
    if env then
      removed = removed + 1
      if now then free_key(KEYS[6], KEYS[7], env, now) end
    end
  else
    removed = removed + redis.call('HDEL', KEYS[5], handle)
  end
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[3], F.processed, removed)
  finished(KEYS[2], KEYS[4], removed)
end
return removed
