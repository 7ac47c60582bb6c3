"""Every Lua script asyncq runs, with its contract. Each one is atomic on the server.

Times come from Redis's own clock (``TIME``), so machines with skewed clocks agree on due times.
``BUMP`` raises the ``attempts`` field that every envelope begins with (see ``shared.envelope``) by editing
the string in place: re-encoding with cjson would turn an empty payload list into an object.

=========  ===============================================  =========================================
script     KEYS / ARGV                                      effect, reply
=========  ===============================================  =========================================
PUT        queue, unfinished, full, totals, producer /      push as many envelopes as fit under
           maxsize (0: none), batch seq, envelope...        maxsize (oldest first in line), add them
                                                            to unfinished; set ``full`` when some did
                                                            not fit. A batch whose seq the producer
                                                            key already holds was applied before (its
                                                            reply was lost): nothing is pushed again.
                                                            Reply: how many were pushed
FETCH      queue, processing, delayed, full, totals /       promote due retries to the head of the
           count, channel                                   line, move up to ``count`` envelopes from
                                                            the head into processing, publish
                                                            ``space`` if a producer waits.
                                                            Reply: [envelopes oldest first, next due
                                                            time in ms or nil, now in ms]
ACK        processing, unfinished, totals /                 remove each envelope from processing;
           channel, envelope...                             subtract the number actually removed from
                                                            unfinished (a late ack of an item that
                                                            recovery took back counts nothing);
                                                            publish ``done`` at 0. Reply: removed
RETRY      processing, delayed, totals, unfinished /        if the envelope is still ours: bump its
           envelope, delay ms, channel                      attempts, schedule it (a byte-identical
                                                            twin already scheduled absorbs it: it is
                                                            then done for join). Reply: 1 or 0
DEAD       processing, dead, unfinished, totals /           if the envelope is still ours: move it to
           channel, envelope, record, counted (1/0),        the dead letters as ``record``; when
           failed (1/0)                                     counted, it is done for join(). Reply:
                                                            1 or 0
RECOVER    heartbeat, processing, queue, consumers,         only if the heartbeat has expired: move
           totals / consumer id, max count                  up to ``count`` envelopes, bumped, back to
                                                            the head of the line, oldest first in
                                                            line. Reply: moved, or -1 if alive
RELEASE    processing, queue / envelope to keep...          give every envelope not listed back to
                                                            the head of the line unbumped, in order
                                                            (a consumer returning what it has not
                                                            started). Reply: how many
REQUEUE    dead, queue, unfinished, totals /                if the record is still a dead letter:
           record, envelope                                 remove it, put the envelope at the end of
                                                            the line, count it unfinished. Reply: 1/0
HEARTBEAT  heartbeat, consumers /                           set the heartbeat (JSON) with its TTL,
           info, ttl ms, consumer id, first (1/0)           register the consumer. Reply: 0 if it had
                                                            expired since the last beat, else 1
LOCK       lock / token, ttl ms                             take the lock if free. Reply: 1 or 0
UNLOCK     lock / token                                     delete the lock if we still hold it
=========  ===============================================  =========================================

Every script but PUT carries the ``allow-oom`` flag (Redis 7): consuming is what frees memory, so it must
keep working on a server that reached ``maxmemory``, while a PUT there is refused whole with OOM.
"""

from __future__ import annotations

from redis.asyncio import Redis

_OOM_OK = "#!lua flags=allow-oom\n"
_PLAIN = "#!lua\n"

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_BUMP = """
local function bump(env)
  local out, n = string.gsub(env, '^{"attempts":(%d+),', function(a)
    return '{"attempts":' .. (tonumber(a) + 1) .. ','
  end, 1)
  return out
end
"""

# Lua's unpack() is limited by the C stack: push in slices.
_PUSH = """
local function push(cmd, key, list, first, last)
  for i = first, last, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, last)))
  end
end
"""

_DONE = """
local function finished(key, channel, n)
  local left = redis.call('DECRBY', key, n)
  if left <= 0 then
    if left < 0 then redis.call('SET', key, 0) end
    redis.call('PUBLISH', channel, 'done')
  end
end
"""

# The producer key remembers the last batch applied ("seq:pushed") for an hour after the producer's last
# put, so a batch resent after a lost reply is recognised; close() deletes it.
PUT = (
    _PLAIN
    + _PUSH
    + """
local last = redis.call('GET', KEYS[5])
if last then
  local seq, pushed = string.match(last, '^(%d+):(%d+)$')
  if seq == ARGV[2] then return tonumber(pushed) end
end
local total = #ARGV - 2
local room = total
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  room = math.min(total, maxsize - redis.call('LLEN', KEYS[1]))
end
if room > 0 then
  push('LPUSH', KEYS[1], ARGV, 3, room + 2)
  redis.call('INCRBY', KEYS[2], room)
  redis.call('HINCRBY', KEYS[4], 'enqueued', room)
else
  room = 0
end
if room < total then redis.call('SET', KEYS[3], '1', 'PX', 30000) end
redis.call('SET', KEYS[5], ARGV[2] .. ':' .. room, 'EX', 3600)
return room
"""
)

FETCH = (
    _OOM_OK
    + _NOW
    + _PUSH
    + """
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
if #due > 0 then
  for i = #due, 1, -1 do redis.call('RPUSH', KEYS[1], due[i]) end
  push('ZREM', KEYS[3], due, 1, #due)
end
local got = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not got then got = {} end
if #got > 0 then
  push('LPUSH', KEYS[2], got, 1, #got)
  if redis.call('DEL', KEYS[4]) == 1 then redis.call('PUBLISH', ARGV[2], 'space') end
end
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {got, nxt[2] or false, now}
"""
)

ACK = (
    _OOM_OK
    + _DONE
    + """
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('LREM', KEYS[1], -1, ARGV[i])
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[3], 'processed', removed)
  finished(KEYS[2], ARGV[1], removed)
end
return removed
"""
)

RETRY = (
    _OOM_OK
    + _NOW
    + _BUMP
    + _DONE
    + """
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), bump(ARGV[1])) == 0 then
  finished(KEYS[4], ARGV[3], 1)
end
redis.call('HINCRBY', KEYS[3], 'retried', 1)
redis.call('HINCRBY', KEYS[3], 'failed', 1)
return 1
"""
)

DEAD = (
    _OOM_OK
    + _DONE
    + """
if redis.call('LREM', KEYS[1], -1, ARGV[2]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'dead', 1)
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[4], 'failed', 1) end
if ARGV[4] == '1' then finished(KEYS[3], ARGV[1], 1) end
return 1
"""
)

RECOVER = (
    _OOM_OK
    + _BUMP
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
local limit = tonumber(ARGV[2])
while moved < limit do
  local env = redis.call('LPOP', KEYS[2])
  if not env then break end
  redis.call('RPUSH', KEYS[3], bump(env))
  moved = moved + 1
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
if moved > 0 then redis.call('HINCRBY', KEYS[5], 'recovered', moved) end
return moved
"""
)

RELEASE = (
    _OOM_OK
    + """
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local held = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = {}
local given = 0
for i = 1, #held do
  if keep[held[i]] then
    kept[#kept + 1] = held[i]
  else
    redis.call('RPUSH', KEYS[2], held[i])
    given = given + 1
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept do redis.call('RPUSH', KEYS[1], kept[i]) end
return given
"""
)

REQUEUE = (
    _OOM_OK
    + """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[3])
redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
return 1
"""
)

HEARTBEAT = (
    _OOM_OK
    + """
local alive = 1
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  alive = 0
end
redis.call('SADD', KEYS[2], ARGV[3])
return alive
"""
)

LOCK = (
    _OOM_OK
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
)

UNLOCK = (
    _OOM_OK
    + """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


class Scripts:
    """The scripts registered on one client; each call is EVALSHA, falling back to EVAL after a restart."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.put = client.register_script(PUT)
        self.fetch = client.register_script(FETCH)
        self.ack = client.register_script(ACK)
        self.retry = client.register_script(RETRY)
        self.dead = client.register_script(DEAD)
        self.recover = client.register_script(RECOVER)
        self.release = client.register_script(RELEASE)
        self.requeue = client.register_script(REQUEUE)
        self.heartbeat = client.register_script(HEARTBEAT)
        self.lock = client.register_script(LOCK)
        self.unlock = client.register_script(UNLOCK)
