"""The other kinds of asyncio.queues across processes: ``RedisPriorityQueue`` and ``RedisLifoQueue``.

Each keeps the whole contract of ``RedisQueue`` (processing hashes and lists, recovery, retries, dead letters, join,
maxsize, delayed and keyed puts); only the order items are taken in differs. The kind is recorded in Redis
on first use: opening the queue as another kind raises ``QueueKindError``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Generic, TypeVar

from asyncq.core.queue import RedisQueue

T = TypeVar("T")


class RedisPriorityQueue(RedisQueue[tuple[float, T]], Generic[T]):
    """Items are ``(priority, data)`` pairs, as in ``asyncio.PriorityQueue``: the lowest priority is taken
    first, and equal priorities in put order (asyncio would compare the data instead). A priority is a number
    (int or float); ``codec`` applies to ``data``. Items given back (recovery, a retry falling due) go to the
    head of their priority. The waiting items are a sorted set, which no blocking pop serves: idle consumers
    wait for the queue's ``ready`` notification instead."""

    kind: ClassVar[str] = "priority"

    def _payload(self, item: tuple[float, T]) -> Any:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"priority queue items are (priority, data) pairs, not {item!r}")
        priority, data = item
        if isinstance(priority, bool) or not isinstance(priority, int | float) or not math.isfinite(priority):
            raise TypeError(f"a priority must be a finite number, not {priority!r}")
        return [priority, self.codec.encode(data)]

    def _item(self, payload: Any) -> tuple[float, T]:
        if not isinstance(payload, list) or len(payload) != 2:
            raise ValueError(f"not a (priority, data) pair: {payload!r}")
        return payload[0], self.codec.decode(payload[1])


class RedisLifoQueue(RedisQueue[T]):
    """The most recently put item is taken first, as in ``asyncio.LifoQueue`` (producers push at the head of
    the line). Items given back (recovery, a retry falling due) also go to the head."""

    kind: ClassVar[str] = "lifo"


KIND_CLASSES: dict[str, type[RedisQueue[Any]]] = {
    "fifo": RedisQueue,
    "lifo": RedisLifoQueue,
    "priority": RedisPriorityQueue,
}


def queue_class(kind: str) -> type[RedisQueue[Any]]:
    """The class of queues of ``kind`` (fifo, lifo, priority)."""
    try:
        return KIND_CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown queue kind {kind!r}: use one of {', '.join(KIND_CLASSES)}") from None
