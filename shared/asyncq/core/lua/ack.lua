-- ACK: remove each envelope from the processing list and count as done only those actually removed (a late
-- ack of an item that recovery took back counts nothing); publish 'done' when nothing is unfinished.
-- KEYS: processing, unfinished, totals, channel
-- ARGV: envelope...
-- Reply: how many were removed
-- flags: allow-oom
-- uses: finished
local removed = 0
for i = 1, #ARGV do
  removed = removed + redis.call('LREM', KEYS[1], -1, ARGV[i])
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[3], F.processed, removed)
  finished(KEYS[2], KEYS[4], removed)
end
return removed
