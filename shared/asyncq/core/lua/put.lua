-- PUT: add a batch of envelopes, oldest first, and count them unfinished. A batch whose seq the producer key
-- already holds was applied before and its reply lost: its stored reply is returned, nothing is added again.
-- Refused whole (-1) once the queue is shut down. An item goes to the waiting items (the head end for
-- 'lifo', the priority zset for 'priority') while it fits under maxsize (else `full` is set and the rest of
-- the batch is left for the producer to offer again), or, with a delay, to the `delayed` zset, due that many
-- ms from now on Redis's clock (not bounded by maxsize: it waits elsewhere). An item with a key that an
-- unfinished item holds (or one done less than its dedup_ttl ago) is not added: its flag is 0.
-- Publishes 'ready' (with notify) when the waiting items were none, 'due' when a delayed item is now the
-- earliest one (idle consumers re-plan their wait). The producer key keeps "seq:taken:flags" for an hour.
-- KEYS: waiting (queue list or ranked zset), unfinished, full, totals, producer, delayed, keys, keys-done,
--       seq, shutdown, channel
-- ARGV: maxsize (0: none), batch seq, kind (fifo/lifo/priority), notify (1/0), options (1/0), then one
--       envelope per item, or with options four values per item: envelope, delay ms, key ('': none), ttl ms
-- Reply: {taken from the front, flags ('1' added, '0' duplicate; '' without options)}, or -1 if shut down
-- uses: push, now, rank, item_id
local last = redis.call('GET', KEYS[5])
if last then
  local seq, taken, flags = string.match(last, '^(%d+):(%d+):(%d*)$')
  if seq == ARGV[2] then return {tonumber(taken), flags} end
end
if redis.call('EXISTS', KEYS[10]) == 1 then return -1 end
local maxsize, kind, notify, options = tonumber(ARGV[1]), ARGV[3], ARGV[4] == '1', ARGV[5] == '1'
local ranked = kind == 'priority'
local waiting = 0
if maxsize > 0 or notify then
  if ranked then waiting = redis.call('ZCARD', KEYS[1]) else waiting = redis.call('LLEN', KEYS[1]) end
end
local was_empty = waiting == 0
local added, taken, full = 0, 0, false
local function wait_in_line(env)
  if ranked then rank(KEYS[1], KEYS[9], env, false)
  elseif kind == 'lifo' then redis.call('RPUSH', KEYS[1], env)
  else redis.call('LPUSH', KEYS[1], env) end
  waiting = waiting + 1
end
local flags = ''
if not options then
  local total = #ARGV - 5
  local room = total
  if maxsize > 0 then room = math.max(0, math.min(total, maxsize - waiting)) end
  if room > 0 then
    if ranked then
      for i = 6, room + 5 do rank(KEYS[1], KEYS[9], ARGV[i], false) end
    elseif kind == 'lifo' then push('RPUSH', KEYS[1], ARGV, 6, room + 5)
    else push('LPUSH', KEYS[1], ARGV, 6, room + 5) end
  end
  added, taken, full = room, room, room < total
  waiting = waiting + room
else
  local now = now_ms()
  local earliest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')[2]
  local pruned = false
  local n = (#ARGV - 5) / 4
  for i = 0, n - 1 do
    local env, delay, key, ttl = ARGV[6 + 4 * i], tonumber(ARGV[7 + 4 * i]), ARGV[8 + 4 * i], ARGV[9 + 4 * i]
    local fresh = true
    if key ~= '' then
      if not pruned then redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now); pruned = true end
      fresh = redis.call('HEXISTS', KEYS[7], key) == 0 and not redis.call('ZSCORE', KEYS[8], key)
    end
    if fresh and delay <= 0 and maxsize > 0 and waiting >= maxsize then full = true; break end
    if fresh then
      if key ~= '' then
        redis.call('ZREM', KEYS[8], key)
        redis.call('HSET', KEYS[7], key, (item_id(env) or '') .. '|' .. ttl)
      end
      if delay > 0 then
        local due = now + delay
        redis.call('ZADD', KEYS[6], due, env)
        if not earliest or due < tonumber(earliest) then
          earliest = due
          redis.call('SPUBLISH', KEYS[11], 'due')
        end
      else
        wait_in_line(env)
      end
      added = added + 1
      flags = flags .. '1'
    else
      flags = flags .. '0'
    end
    taken = taken + 1
  end
end
if added > 0 then
  redis.call('INCRBY', KEYS[2], added)
  redis.call('HINCRBY', KEYS[4], F.enqueued, added)
end
if notify and was_empty and waiting > 0 then redis.call('SPUBLISH', KEYS[11], 'ready') end
if full then redis.call('SET', KEYS[3], '1', 'PX', 30000) end
redis.call('SET', KEYS[5], ARGV[2] .. ':' .. taken .. ':' .. flags, 'EX', 3600)
return {taken, flags}
