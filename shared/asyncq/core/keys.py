"""The Redis key layout of one queue: every part of asyncq and every operator relies on it.

All keys of the queue ``NAME`` share the hash tag ``{NAME}``, so they live in one slot and the Lua scripts
stay valid on Redis Cluster.

==================================  ======  ==========================================================
key                                 type    contents
==================================  ======  ==========================================================
``asyncq:{NAME}:queue``             list    envelopes waiting; producers LPUSH, consumers take from the
                                            right, so the right end is the head of the line
``asyncq:{NAME}:held:<id>``         hash    item id -> envelope, for the items consumer process ``<id>``
                                            claimed (acknowledged by id); an item is always in exactly
                                            one list, hash, set or zset of the queue
``asyncq:{NAME}:processing:<id>``   list    what consumer ``<id>`` claimed that the hash cannot hold by
                                            id: a blocking pop's item (the pop moves it here), a value
                                            that is not an envelope, a second copy of a held item; and
                                            everything a consumer of a version before 0.2 claimed
``asyncq:{NAME}:heartbeat:<id>``    string  JSON about consumer ``<id>`` (host, pid, counters, latency
                                            digest); its TTL is the consumer's liveness
``asyncq:{NAME}:consumers``         set     ids of consumers that hold, or held, a processing hash or list
``asyncq:{NAME}:delayed``           zset    envelopes waiting for a retry, scored by due time (ms,
                                            Redis's clock)
``asyncq:{NAME}:dead``              list    dead-letter records (JSON: reason, time, envelope), newest
                                            on the left
``asyncq:{NAME}:unfinished``        string  items put and not yet done: what ``join()`` waits for
``asyncq:{NAME}:totals``            hash    counters: enqueued, processed, failed, retried, dead,
                                            recovered, dropped (by ``shutdown(immediate=True)``)
``asyncq:{NAME}:full``              string  set (with a TTL) while a producer waits for room
``asyncq:{NAME}:sweep-lock``        string  held by the consumer running the recovery sweep (TTL)
``asyncq:{NAME}:producer:<id>``     string  ``seq:pushed`` of producer ``<id>``'s last batch, so a batch
                                            resent after a lost reply is not pushed twice (TTL 1 h)
``asyncq:{NAME}:events``            pubsub  sharded channel (SPUBLISH): ``done`` when unfinished reaches 0, ``space``
                                            when a consumer took items while a producer waited, ``ready``
                                            when items arrive in an empty queue of a sharded queue
``asyncq:{NAME}:meta``              hash    ``shards``: the queue's shard count, and ``kind`` (``fifo``,
                                            ``lifo``, ``priority``), recorded on first use (no ``kind``:
                                            a queue of an older version, a FIFO queue)
``asyncq:{NAME}:ranked``            zset    a priority queue's waiting envelopes (``queue`` stays empty),
                                            scored by priority; each member is a 16-digit put sequence
                                            number (all zeros: given back to the head of its priority)
                                            followed by the envelope, so equal priorities keep put order
``asyncq:{NAME}:seq``               string  the last put sequence number of a priority queue
``asyncq:{NAME}:keys``              hash    idempotency key -> ``id|ttl ms`` of the unfinished item put
                                            with it (``put(item, key=...)``)
``asyncq:{NAME}:keys-done``         zset    keys remembered after their item was done (``dedup_ttl``),
                                            scored by when they are forgotten (ms, Redis's clock)
``asyncq:{NAME}:shutdown``          string  set by ``shutdown()`` (``drain`` or ``immediate``): puts are
                                            refused, getters end once the queue is empty
==================================  ======  ==========================================================

The ``delayed`` zset holds the retries and the delayed puts (``put(item, delay=...)``) alike: both are items
scheduled for later, promoted by FETCH once due. In a LIFO queue producers push on the right (the head), so
the newest item is taken first; everything else is the FIFO layout.

A queue of N > 1 shards is N such key sets, shard ``i``'s under the hash tag ``{NAME#i}`` (``#`` cannot occur in
a name), or ``{NAME#i.k}`` with the smallest ``k`` that puts it in the i-th N-th of the slot range: a cluster's
masters own even runs of slots, so the shards spread evenly over them. Only ``meta`` stays under ``{NAME}``. A
queue of one shard is the layout above, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")

# The counters of the ``totals`` hash; the Lua scripts get these names as their table ``F``.
TOTALS = ("enqueued", "processed", "failed", "retried", "dead", "recovered", "dropped")

# The kinds of queue (``meta`` field ``kind``): the order items are taken in.
KINDS = ("fifo", "lifo", "priority")


def check_name(name: str) -> str:
    """Return ``name`` if it can name a queue; raise ``ValueError`` otherwise.

    The character set keeps names free of glob characters (SCAN patterns) and hash-tag braces.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid queue name {name!r}: use 1-100 letters, digits, '_', '.' or '-'")
    return name


@dataclass(frozen=True)
class Keys:
    """The keys and channel of the queue ``name``, or of its shard ``shard`` when it has several."""

    name: str
    shard: int | None = None
    shards: int = 1

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.shard is not None and not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}: a shard index is in 0..shards-1")

    @property
    def tag(self) -> str:
        """The hash tag's content: ``NAME``, or ``NAME#i[.k]`` for shard ``i`` of ``shards``."""
        return self.name if self.shard is None else _shard_tag(self.name, self.shard, self.shards)

    @property
    def prefix(self) -> str:
        return f"asyncq:{{{self.tag}}}:"

    @property
    def index(self) -> int:
        """This key set's place among the queue's shards (0 for an unsharded queue)."""
        return self.shard or 0

    @property
    def meta(self) -> str:
        """The queue's own record (shard count), under ``{NAME}`` whatever the shard."""
        return f"asyncq:{{{self.name}}}:meta"

    @property
    def queue(self) -> str:
        return self.prefix + "queue"

    @property
    def consumers(self) -> str:
        return self.prefix + "consumers"

    @property
    def delayed(self) -> str:
        return self.prefix + "delayed"

    @property
    def dead(self) -> str:
        return self.prefix + "dead"

    @property
    def unfinished(self) -> str:
        return self.prefix + "unfinished"

    @property
    def totals(self) -> str:
        return self.prefix + "totals"

    @property
    def full(self) -> str:
        return self.prefix + "full"

    @property
    def sweep_lock(self) -> str:
        return self.prefix + "sweep-lock"

    @property
    def events(self) -> str:
        return self.prefix + "events"

    @property
    def ranked(self) -> str:
        return self.prefix + "ranked"

    @property
    def seq(self) -> str:
        return self.prefix + "seq"

    @property
    def dedup(self) -> str:
        return self.prefix + "keys"

    @property
    def dedup_done(self) -> str:
        return self.prefix + "keys-done"

    @property
    def shutdown(self) -> str:
        return self.prefix + "shutdown"

    def waiting(self, kind: str) -> str:
        """The key of the waiting items: the ``queue`` list, or a priority queue's ``ranked`` zset."""
        return self.ranked if kind == "priority" else self.queue

    def processing(self, consumer_id: str) -> str:
        return f"{self.prefix}processing:{consumer_id}"

    def held(self, consumer_id: str) -> str:
        return f"{self.prefix}held:{consumer_id}"

    def heartbeat(self, consumer_id: str) -> str:
        return f"{self.prefix}heartbeat:{consumer_id}"

    def producer(self, producer_id: str) -> str:
        return f"{self.prefix}producer:{producer_id}"

    @property
    def processing_pattern(self) -> str:
        """SCAN pattern matching every processing list (braces are not special in Redis globs)."""
        return self.prefix + "processing:*"

    @property
    def claims_pattern(self) -> str:
        """SCAN pattern matching every processing list and hash, and no other key of the queue: ``proce...``
        and ``held:`` (``producer:`` differs in its fourth letter, ``heartbeat:`` in its third)."""
        return self.prefix + "[ph][re][ol][cd][e:]*"

    @property
    def heartbeat_pattern(self) -> str:
        return self.prefix + "heartbeat:*"

    def consumer_of(self, key: str | bytes) -> str:
        """The consumer id in a processing, held or heartbeat key."""
        text = key.decode() if isinstance(key, bytes) else key
        return text.split(":", 3)[3]


def shard_keys(name: str, shards: int) -> list[Keys]:
    """The key sets of queue ``name`` of ``shards`` shards: today's one for 1, ``{NAME#i}`` ones beyond."""
    if shards < 1:
        raise ValueError(f"a queue has at least 1 shard, not {shards}")
    return [Keys(name)] if shards == 1 else [Keys(name, i, shards) for i in range(shards)]


@cache
def _shard_tag(name: str, shard: int, shards: int) -> str:
    low, high = shard * REDIS_CLUSTER_HASH_SLOTS // shards, (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    tag = f"{name}#{shard}"
    k = 0
    while not low <= key_slot(tag.encode()) < high:
        k += 1
        tag = f"{name}#{shard}.{k}"
    return tag
