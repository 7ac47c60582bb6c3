"""The producing side of a RedisQueue: puts gathered into batches (group commit), one PUT script per batch.

A batch whose reply was lost is resent as it was, with its sequence number, and the PUT script recognises it
(``asyncq.core.scripts``): a put the library retries never enqueues twice. A put that finds no room (under
``maxsize``, or Redis out of memory) waits, woken by the queue's ``space`` notification; it is never
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.core.batcher import Batcher
from asyncq.core.connection import rediscover
from asyncq.core.errors import QueueClosed
from asyncq.core.events import Events
from asyncq.core.failures import NotReplicated, is_out_of_memory, is_transient
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replication:
    """``put()`` returns once ``min_replicas`` replicas hold the item (0: once the master does), waiting
    ``timeout`` seconds for them per try."""

    min_replicas: int = 0
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.timeout <= 0:
            raise ValueError("min_replicas must be >= 0 and replica_timeout > 0")


@dataclass(eq=False, slots=True)
class PutItem:
    """One put: the envelope, with its options (``delay_ms`` > 0: scheduled; ``key``: the idempotency key's JSON
    text without its quotes; ``ttl_ms``: how long the key is remembered once done). ``accepted`` is False once
    PUT refused it as a duplicate."""

    raw: bytes
    delay_ms: int = 0
    key: str = ""
    ttl_ms: int = 0
    accepted: bool = field(default=True)

    @property
    def plain(self) -> bool:
        return not self.delay_ms and not self.key


class Puts:
    """Sends the puts of producer ``producer_id``; ``maxsize`` bounds the items waiting (0: none)."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        producer_id: str,
        maxsize: int,
        events: Events,
        replication: Replication,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._producer_id = producer_id
        self.maxsize = maxsize
        self._events = events
        self._replication = replication
        self._sent_any = False
        self.known_full = False  # the last batch found no room (put_nowait's QueueFull)
        self._batcher: Batcher[PutItem] = Batcher(
            "put",
            self._send,
            wait_room=self._wait_room,
            max_batch=1000,
            transient=lambda exc: is_transient(exc) or is_out_of_memory(exc),
        )

    def submit(self, item: PutItem) -> asyncio.Future[None]:
        future = self._batcher.submit(item)
        assert future is not None
        return future

    async def flush(self) -> None:
        await self._batcher.flush()

    async def full(self) -> bool:
        return self.maxsize > 0 and await self.waiting() >= self.maxsize

    async def waiting(self) -> int:
        if self._scripts.kind == "priority":
            return int(await self._client.zcard(self._keys.ranked))
        return int(await self._client.llen(self._keys.queue))

    async def close(self, timeout: float) -> None:
        """Send what can be sent within ``timeout``; fail the rest with ``QueueClosed``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._batcher.flush()
        dropped = self._batcher.fail_all(QueueClosed("the queue was closed before the put reached Redis"))
        if dropped:
            log.error("%d put(s) could not reach Redis before close()", dropped)
        elif self._sent_any:
            # Every batch was answered: nothing can be resent, so the record of the last one can go.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._client.delete(self._keys.producer(self._producer_id))

    async def _send(self, items: list[PutItem], seq: int) -> int:
        self._sent_any = True
        options = not all(item.plain for item in items)
        values: list[bytes | str | int]
        if options:
            values = []
            for item in items:
                values += (item.raw, item.delay_ms, item.key, item.ttl_ms)
        else:
            values = [item.raw for item in items]
        wanted = self._replication.min_replicas
        # A queue shut down refuses the batch (ShutDownRefusal): not transient, its callers get it.
        if not wanted:
            taken, flags = await self._scripts.put_items(self._producer_id, seq, values, self.maxsize, options=options)
        else:
            taken, flags = await self._send_replicated(seq, values, options)
        for item, flag in zip(items, flags, strict=False):
            item.accepted = flag == "1"
        self.known_full = taken < len(items)
        return taken

    async def _send_replicated(self, seq: int, values: list[bytes | str | int], options: bool) -> tuple[int, str]:
        wanted, timeout = self._replication.min_replicas, self._replication.timeout
        taken, flags, confirmed = await self._scripts.put_replicated(
            self._producer_id, seq, values, self.maxsize, wanted, timeout, options=options
        )
        if confirmed < wanted:
            # This server may have lost its replicas, or its role (a failover): look for the master again.
            await rediscover(self._client)
            raise NotReplicated(f"only {confirmed} of {wanted} replica(s) confirmed the put within {timeout:g} s")
        return taken, flags

    async def _wait_room(self) -> None:
        await self._events.ensure_listening()
        self._events.space.clear()
        if await self.full():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._events.space.wait()
