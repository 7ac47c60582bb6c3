-- Functions the scripts share. The loader copies in those a script names on its "-- uses:" line.
-- F: the names of the counters in the totals hash, generated from asyncq's Python definition.

--- now
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

--- bump
-- Raise the attempts field every envelope begins with (~N| now, {"attempts":N, before 0.2), editing the
-- text in place: the payload is never decoded.
local function bump(env)
  if string.byte(env, 1) == 126 then
    return (string.gsub(env, '^~(%d+)|', function(a) return '~' .. (tonumber(a) + 1) .. '|' end, 1))
  end
  return (string.gsub(env, '^{"attempts":(%d+),', function(a)
    return '{"attempts":' .. (tonumber(a) + 1) .. ','
  end, 1))
end

--- item_id
-- The id of an envelope of either form (asyncq.core.envelope), or nil for a value that is not one.
local function item_id(env)
  return string.match(env, '^~%d+|([%w_%.%-]+)|') or string.match(env, '^{"attempts":%d+,"id":"([%w_%.%-]+)"')
end

--- hold
-- Claimed envelopes go to the processing hash under their id (appended to `held` as id, envelope); a value
-- without an id, or a second copy of an id the hash holds, to the processing list (appended to `listed`).
local function hold(envs, hash, list, held, listed)
  for i = 1, #envs do
    local env = envs[i]
    local id = item_id(env)
    if id and redis.call('HSETNX', hash, id, env) == 1 then
      held[#held + 1] = id
      held[#held + 1] = env
    else
      redis.call('LPUSH', list, env)
      listed[#listed + 1] = env
    end
  end
end

--- unhold
-- Take the item known by `handle` out of the consumer's processing hash (its id) or list ('#' then its id,
-- or '=' then its text for a value without one: the list is short, a blocking pop's items and twins);
-- returns its envelope, or nil if it was not there (recovery took it back).
local function unhold(handle, hash, list)
  local first = string.byte(handle, 1)
  if first == 61 then
    local value = string.sub(handle, 2)
    if redis.call('LREM', list, -1, value) == 0 then return nil end
    return value
  elseif first == 35 then
    local id = string.sub(handle, 2)
    local listed = redis.call('LRANGE', list, 0, -1)
    for i = #listed, 1, -1 do
      if item_id(listed[i]) == id then
        redis.call('LREM', list, -1, listed[i])
        return listed[i]
      end
    end
    return nil
  end
  local env = redis.call('HGET', hash, handle)
  if env then redis.call('HDEL', hash, handle) end
  return env
end

--- take_back
-- Up to about `limit` items out of a processing list, then its hash, each handed to `give`; returns how many.
local function take_back(list, hash, limit, give)
  local moved = 0
  while moved < limit do
    local env = redis.call('LPOP', list)
    if not env then break end
    give(env)
    moved = moved + 1
  end
  local cursor = '0'
  while moved < limit do
    local page = redis.call('HSCAN', hash, cursor, 'COUNT', limit - moved)
    local found = page[2]
    for i = #found - 1, 1, -2 do  -- a small hash keeps claim order: newest first, so the oldest ends at the head
      give(found[i + 1])
      redis.call('HDEL', hash, found[i])
      moved = moved + 1
    end
    cursor = page[1]
    if cursor == '0' then break end
  end
  return moved
end

--- give_back
-- Every item of a processing list and hash but those in `keep` (handles: see unhold), handed to `give`;
-- the list keeps the order of what stays. Returns how many were given.
local function give_back(list, hash, keep, give)
  local given = 0
  local listed, kept = redis.call('LRANGE', list, 0, -1), {}
  for i = 1, #listed do
    local id = item_id(listed[i])
    if keep['=' .. listed[i]] or (id and keep['#' .. id]) then
      kept[#kept + 1] = listed[i]
    else
      give(listed[i])
      given = given + 1
    end
  end
  redis.call('DEL', list)
  for i = 1, #kept do redis.call('RPUSH', list, kept[i]) end
  local all = redis.call('HGETALL', hash)
  for i = #all - 1, 1, -2 do  -- newest first, as for the list: the oldest ends at the head of the line
    if not keep[all[i]] then
      give(all[i + 1])
      redis.call('HDEL', hash, all[i])
      given = given + 1
    end
  end
  return given
end

--- push
-- unpack() is limited by the C stack: push in slices.
local function push(cmd, key, list, first, last)
  for i = first, last, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, last)))
  end
end

--- finished
-- n items are done for join(): lower unfinished, publish 'done' when nothing is left. The channel is a key of
-- the queue's slot (sharded pub/sub: on a cluster the message stays on the slot's shard).
local function finished(key, channel, n)
  local left = redis.call('DECRBY', key, n)
  if left <= 0 then
    if left < 0 then redis.call('SET', key, 0) end
    redis.call('SPUBLISH', channel, 'done')
  end
end

--- rank
-- A priority queue's waiting items are a zset scored by priority: the payload is the item [priority, data],
-- so the priority is the first number of the payload, the last field (before 0.2: the first number after
-- "payload":[; a quote inside a JSON string is escaped, so the first ,"payload": is the field's own). The
-- member is a 16-digit put sequence number, then the envelope: equal priorities sort by it, in put order;
-- `head` (an item given back) gets all zeros, before them.
local function rank(zkey, seqkey, env, head)
  local p
  if string.byte(env, 1) == 126 then
    p = string.match(env, '^~%d+|[^|]*|[^|]*|[^|]*|[^|]*|%[%s*(-?[%d%.eE+-]+)')
  else
    p = string.match(env, ',"payload":%[%s*(-?[%d%.eE+-]+)')
  end
  p = tonumber(p) or 0
  local prefix = '0000000000000000'
  if not head then prefix = string.format('%016d', redis.call('INCR', seqkey)) end
  redis.call('ZADD', zkey, p, prefix .. env)
end

--- free_key
-- An item put with an idempotency key is done: forget its key (when the key is still this item's), or keep
-- it `ttl` ms longer in `done` (dedup_ttl). The key is the fourth field (before 0.2: the JSON text after the
-- id, before enqueued_at).
local function free_key(keys, done, env, now)
  local id, key
  if string.byte(env, 1) == 126 then
    id, key = string.match(env, '^~%d+|([^|]*)|[^|]*|([^|]+)|')
  else
    id, key = string.match(env, '^{"attempts":%d+,"id":"([^"]*)","key":"(.-)","enqueued_at":')
  end
  if not key then return end
  local held = redis.call('HGET', keys, key)
  if not held then return end
  local owner, ttl = string.match(held, '^(.*)|(%d+)$')
  if owner ~= id then return end
  redis.call('HDEL', keys, key)
  if tonumber(ttl) > 0 then redis.call('ZADD', done, now + tonumber(ttl), key) end
end
