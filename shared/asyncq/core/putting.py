"""The producing side of one ``RedisQueue``: a put's options checked and encoded (``PutItem``), sent through
the queue's ``Spread`` of shards, and ``put_nowait()``'s puts kept until they are done.

A refusal because the queue is shut down (``ShutDownRefusal`` from PUT) becomes ``QueueShutDown`` here.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asyncq.core.closing import QueueShutDown
from asyncq.core.envelope import encode, key_text
from asyncq.core.producing import PutItem
from asyncq.core.scripts import ShutDownRefusal
from asyncq.core.spread import Spread

log = logging.getLogger(__name__)


class Putter:
    """Puts for queue ``name``; ``ready()`` is awaited before the first send (the layout check)."""

    def __init__(
        self,
        spread: Spread,
        *,
        name: str,
        max_item_bytes: int,
        dedup_ttl: float,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        self._spread = spread
        self._name = name
        self._max_item_bytes = max_item_bytes
        self.dedup_ttl = seconds("dedup_ttl", dedup_ttl)
        self._ready = ready
        self._nowait: set[asyncio.Task[bool]] = set()  # put_nowait()'s puts, referenced until done
        self.shut_down = False  # a PUT of this process was refused: the queue is shut down

    def item(self, payload: Any, delay: float | None, key: str | None, dedup_ttl: float | None) -> PutItem:
        """The put of ``payload`` (a JSON value) with its options; raises before anything reaches Redis."""
        if key is None and not delay and dedup_ttl is None:  # the plain put: the hot path
            return PutItem(encode(payload, max_bytes=self._max_item_bytes, queue=self._name))
        if key is not None and (type(key) is not str or not key):
            raise TypeError("key must be a non-empty string")
        raw = encode(payload, max_bytes=self._max_item_bytes, queue=self._name, key=key)
        ttl = self.dedup_ttl if dedup_ttl is None else seconds("dedup_ttl", dedup_ttl)
        return PutItem(
            raw,
            delay_ms=math.ceil(seconds("delay", delay or 0.0) * 1000),
            key="" if key is None else key_text(key),  # the text the envelope and the scripts hold
            ttl_ms=math.ceil(ttl * 1000),
        )

    async def send(self, put_item: PutItem) -> bool:
        """Send one put; True unless it was refused as a duplicate key."""
        await self._ready()
        try:
            await self._spread.submit(put_item)
        except ShutDownRefusal as exc:
            self.shut_down = True
            raise QueueShutDown("the queue was shut down") from exc
        return put_item.accepted

    async def send_many(self, put_items: Sequence[PutItem]) -> int:
        """Send several puts, in order; returns how many were not refused as duplicates."""
        await self._ready()
        try:
            await asyncio.gather(*(self._spread.submit(put_item) for put_item in put_items))
        except ShutDownRefusal as exc:
            self.shut_down = True
            raise QueueShutDown("the queue was shut down") from exc
        return sum(put_item.accepted for put_item in put_items)

    def nowait(self, put_item: PutItem) -> None:
        """``asyncio.QueueFull`` if this process knows the queue is full, else send in the background."""
        if self._spread.known_full:
            raise asyncio.QueueFull
        task = asyncio.create_task(self.send(put_item), name="asyncq-put-nowait")
        self._nowait.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[bool]) -> None:
        self._nowait.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("put_nowait(): the put failed: %s", exc)

    async def flush(self) -> None:
        """Wait for the puts put_nowait() sent in the background, then for every batch."""
        if self._nowait:
            await asyncio.wait(set(self._nowait))
        await self._spread.flush()


def seconds(what: str, value: float) -> float:
    """``value`` if it is a number of seconds >= 0; ``ValueError`` otherwise."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)
