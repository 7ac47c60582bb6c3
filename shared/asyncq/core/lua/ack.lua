-- ACK: remove each envelope from the processing list and count as done only those actually removed (a late
-- ack of an item that recovery took back counts nothing); publish 'done' when nothing is unfinished.
-- With the keys and keys-done keys (a batch holding an item put with an idempotency key), forget the keys
-- of the items removed (or remember them for their dedup_ttl).
-- KEYS: processing, unfinished, totals, channel[, keys, keys-done]
-- ARGV: envelope...
-- Reply: how many were removed
-- flags: allow-oom
-- uses: finished, now, free_key
local removed = 0
local now = KEYS[5] and now_ms()
for i = 1, #ARGV do
  local n = redis.call('LREM', KEYS[1], -1, ARGV[i])
  if n > 0 and now then free_key(KEYS[5], KEYS[6], ARGV[i], now) end
  removed = removed + n
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[3], F.processed, removed)
  finished(KEYS[2], KEYS[4], removed)
end
return removed
