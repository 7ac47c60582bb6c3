"""``RedisQueue``: asyncio.Queue's producer/consumer contract across processes and machines, over Redis.
Key layout: ``asyncq.core.keys``; the server-side steps: ``asyncq.core.scripts``; the other kinds (priority,
LIFO): ``asyncq.core.kinds``; shutdown: ``asyncq.core.closing``."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import redis.asyncio as aioredis

from asyncq.consuming.session import ConsumerSession, ConsumeSettings
from asyncq.consuming.stats import ConsumerStats
from asyncq.core.backoff import retrying
from asyncq.core.closing import QueueShutDown, ShutdownWatch
from asyncq.core.codec import Codec, JsonCodec
from asyncq.core.connection import TLSOptions
from asyncq.core.envelope import DEFAULT_MAX_ITEM_BYTES, Message
from asyncq.core.errors import QueueClosed
from asyncq.core.keys import check_name
from asyncq.core.producing import PutItem, Replication
from asyncq.core.putting import Putter, seconds
from asyncq.core.retries import RetryPolicy
from asyncq.core.shards import Shards
from asyncq.core.spread import Spread
from asyncq.core.urls import resolve_url

log = logging.getLogger(__name__)
T = TypeVar("T")


class RedisQueue(Generic[T]):
    """A FIFO queue shared by every process that opens the same ``name`` on the same Redis.

    ``maxsize`` bounds the items waiting in the queue across all processes (``put`` waits for room).
    ``prefetch`` lets a consuming process claim that many items beyond its waiting ``get()`` calls (0: only
    for them, as ``asyncio.Queue`` hands items out); ``"auto"`` (what the ``consumer`` CLI uses) follows the
    backlog, from 0 up to ``batch_size`` (``asyncq.consuming.prefetch``), on a FIFO queue; on a priority or
    LIFO queue it stays 0, so no buffered item jumps the order.
    ``retry`` (a ``RetryPolicy``) says how many deliveries an item gets before it goes to the dead letters,
    and how long a failed one waits. With ``min_replicas`` N > 0, ``put()`` returns only once N replicas
    hold the item (``WAIT``, once per batch, ``replica_timeout`` seconds per try; a shortfall is retried,
    never reported done): a failover then loses no item whose put returned. ``shards`` N > 1 spreads the
    queue over N hash slots (``asyncq.core.shards``): FIFO then holds within a shard, not across them.
    ``codec`` turns items into JSON values and back (``asyncq.core.codec``; default: items are JSON values).
    ``dedup_ttl`` is how long, in seconds, an idempotency key (``put(item, key=...)``) is remembered after
    its item is done (0: until it is done).
    """

    kind: ClassVar[str] = "fifo"

    def __init__(
        self,
        name: str = "asyncq",
        *,
        url: str | None = None,
        redis: aioredis.Redis | None = None,
        maxsize: int = 0,
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        retry: RetryPolicy | None = None,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        prefetch: int | Literal["auto"] = 0,
        batch_size: int = 500,
        heartbeat_interval: float = 2.0,
        block_timeout: float = 2.0,
        tls: TLSOptions | None = None,
        shards: int = 1,
        codec: Codec[Any] | None = None,
        dedup_ttl: float = 0.0,
    ) -> None:
        if prefetch != "auto" and (type(prefetch) is not int or prefetch < 0):
            raise ValueError(f"prefetch must be a count >= 0 or 'auto', not {prefetch!r}")
        if maxsize < 0 or batch_size < 1 or shards < 1:
            raise ValueError("maxsize must be >= 0; batch_size and shards >= 1")
        seconds("dedup_ttl", dedup_ttl)  # before any client is made
        self.codec: Codec[Any] = codec or JsonCodec()
        check_name(name)
        self.name = name
        self.url = resolve_url(url)
        self.maxsize = maxsize
        self.max_item_bytes = max_item_bytes
        self.retry_policy = retry or RetryPolicy()
        self.heartbeat_interval = heartbeat_interval
        self.shards = Shards(name, shards, url=self.url, redis=redis, tls=tls, kind=self.kind)
        self.keys = self.shards.home.keys
        self._client = self.shards.home.client
        # Only FIFO adapts: an item buffered here would be handed out before a higher priority (or, LIFO, a
        # newer) item put after it.
        fixed = None if prefetch == "auto" and self.kind == "fifo" else (0 if prefetch == "auto" else prefetch)
        self._settings = ConsumeSettings(fixed, batch_size, block_timeout, heartbeat_interval, self.retry_policy)
        self.consumer_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.stats = ConsumerStats()
        replication = Replication(min_replicas, replica_timeout)
        self._puts = Spread(self.shards, producer_id=self.consumer_id, maxsize=maxsize, replication=replication)
        self._putter = Putter(
            self._puts, name=name, max_item_bytes=max_item_bytes, dedup_ttl=dedup_ttl, ready=self._check_layout
        )
        self._consuming: ConsumerSession | None = None
        self._closed = False
        self._layout_lock = asyncio.Lock()

    @property
    def in_progress(self) -> int:
        """Items this process got and has not yet marked done."""
        return len(self._consuming.holdings) if self._consuming is not None else 0

    @property
    def concurrency(self) -> int:
        """Informational: how many coroutines consume (published with the heartbeat)."""
        return self.stats.concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        self.stats.concurrency = value

    @property
    def failure(self) -> BaseException | None:
        """Why consuming stopped by itself (Redis refused what it must do, e.g. NOPERM), if it did; ``get()``
        then raises ``QueueClosed`` chained to it."""
        return self._consuming.fetcher.failure if self._consuming is not None else None

    @property
    def redis(self) -> aioredis.Redis:
        """The client for everything but the blocking pop."""
        return self._client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def put(
        self, item: T, *, delay: float | None = None, key: str | None = None, dedup_ttl: float | None = None
    ) -> bool:
        """Put ``item`` at the end of the queue; waits while the queue is full. Returns True, or False when
        ``key`` is given and an item put with that key is unfinished (waiting, scheduled, claimed or
        retrying), or was done less than ``dedup_ttl`` seconds ago (default: the queue's): nothing is put.

        With ``delay``, the item waits that many seconds in Redis (Redis's clock) before consumers can take
        it; it counts for ``join()`` meanwhile and is not bounded by ``maxsize``.

        Raises ``TypeError`` or ``ItemTooLarge`` before anything reaches Redis, ``QueueShutDown`` once the
        queue is shut down. Through an outage or failover the put is retried until it succeeds (forever:
        bound it with ``asyncio.timeout`` if you must); a refusal (NOPERM, ...) is raised here. A retried put
        never enqueues twice; cancelling a put whose batch is already in flight may still enqueue it."""
        return await self._putter.send(self._put_item(item, delay, key, dedup_ttl))

    async def put_many(
        self, items: Iterable[T], *, keys: Iterable[str | None] | None = None, delay: float | None = None
    ) -> int:
        """Put several items, in order, in as few round trips as possible (each with its key from ``keys``,
        if given, and ``delay``). Returns how many were put (a duplicate key is not)."""
        if keys is None:
            put_items = [self._put_item(item, delay, None, None) for item in items]
        else:
            put_items = [self._put_item(i, delay, k, None) for i, k in zip(items, keys, strict=True)]
        return await self._putter.send_many(put_items)

    def put_nowait(self, item: T, *, delay: float | None = None, key: str | None = None) -> None:
        """Put without waiting: raises ``asyncio.QueueFull`` if this process knows the queue is full (its last
        put found no room under ``maxsize``), ``QueueShutDown`` if it knows it is shut down; otherwise the put
        is sent in the background, and ``flush()`` waits for it. Whether a keyed put was a duplicate, and a
        failure Redis reports later, are not returned: they are logged."""
        self._putter.nowait(self._put_item(item, delay, key, None))

    def _put_item(self, item: T, delay: float | None, key: str | None, dedup_ttl: float | None) -> PutItem:
        self._check_open_for_puts()
        return self._putter.item(self._payload(item), delay, key, dedup_ttl)

    def _payload(self, item: T) -> Any:
        """The JSON value stored for ``item``."""
        return self.codec.encode(item)

    def _item(self, payload: Any) -> T:
        """The item a stored JSON value stands for."""
        return self.codec.decode(payload)  # type: ignore[no-any-return]

    async def get(self) -> T:
        """Remove and return an item, waiting until one is available. Raises ``QueueShutDown`` once the queue
        is shut down and nothing waits or is scheduled (at once after ``shutdown(immediate=True)``)."""
        return self._item((await self.get_message()).payload)

    async def get_message(self) -> Message:
        """Like ``get()``, but the whole ``Message``: id, payload (as stored), enqueue time, attempts, key."""
        self._check_not_closed()
        if self._consuming is None:
            await self._check_layout()
        return await self._consumer().get()

    def get_nowait(self) -> T:
        """An item this process already claimed from Redis (with ``prefetch`` > 0 the fetcher keeps up to that
        many at hand), else ``asyncio.QueueEmpty``: it never waits for a round trip. The first call starts
        consuming, so later calls may find items. Raises ``QueueShutDown`` as ``get()`` does."""
        self._check_not_closed()
        session = self._consumer()
        message = session.fetcher.take_buffered()
        if message is None or not session.holdings.take(message):
            raise asyncio.QueueEmpty
        return self._item(message.payload)

    def task_done(self) -> None:
        """Mark done the oldest item that the calling task got and has not marked (else the process's oldest).

        Like asyncio.Queue's, a plain call; the acknowledgement reaches Redis in the background, batched.
        ``join()`` and ``close()`` flush it. Raises ``ValueError`` if called more times than items were got.
        """
        if self._consuming is None:
            raise ValueError("task_done() called more times than there were items got")
        holdings = self._consuming.holdings
        holdings.done(holdings.oldest_unmarked())

    def ack(self, message: Message) -> None:
        """Mark ``message`` done (``task_done()`` for a particular message)."""
        if self._consuming is None:
            raise ValueError("task_done() called more times than there were items got")
        self._consuming.holdings.done(message)

    async def retry(self, message: Message, delay: float | None = None) -> bool:
        """Give ``message`` back for another attempt after ``delay`` seconds (default: the retry policy's
        backoff), kept in Redis, not here.

        After the policy's last delivery it goes to the dead letters instead. Returns False if recovery had
        already taken it back (it is then redelivered anyway).
        """
        if self._consuming is not None and self._consuming.shutdown.known == "immediate":
            return await self.dead_letter(message, "retry refused: the queue was shut down (immediate)")
        if self.retry_policy.exhausted(message.delivery):
            return await self.dead_letter(message, f"failed {message.delivery} times (max_deliveries)")
        wait = self.retry_policy.delay(message.delivery) if delay is None else delay
        return await self._consumer().retry(message, wait)

    async def dead_letter(self, message: Message, reason: str, *, failed: bool = True) -> bool:
        """Move ``message`` to the dead letters with ``reason``; it counts as done for ``join()``."""
        return await self._consumer().dead_letter(message, reason, failed=failed)

    def _consumer(self) -> ConsumerSession:
        if self._consuming is None:
            self._consuming = ConsumerSession(
                shards=self.shards,
                consumer_id=self.consumer_id,
                stats=self.stats,
                settings=self._settings,
            )
        return self._consuming

    # -- shutting down (asyncio.Queue.shutdown, across processes) ------------------------------------------

    async def shutdown(self, immediate: bool = False) -> int:
        """Shut the queue down for every process (``asyncq.core.closing``): ``put()`` raises ``QueueShutDown``
        from now on; ``get()`` raises it once nothing waits or is scheduled. With ``immediate``, what waits or
        is scheduled is dropped, counted done for ``join()``, and getters raise at once; items consumers hold
        stay theirs to finish. Returns how many items were dropped. ``asyncq reset NAME`` opens the name
        again."""
        await self._check_layout()
        watch = self._consuming.shutdown if self._consuming is not None else ShutdownWatch(self.shards.parts)
        dropped = await retrying("shutdown", lambda: watch.shutdown(immediate=immediate), log)
        return int(dropped or 0)

    # -- waiting for completion, sizes -------------------------------------------------------------------

    async def join(self) -> None:
        """Wait until every item put under this name, by any process, has been marked done."""
        if self._consuming is not None:
            await self._consuming.holdings.acks.flush()
        await self._check_layout()
        await self._puts.join()

    async def unfinished(self) -> int:
        """How many items were put and are not yet done (what ``join()`` waits for)."""
        return await self._puts.unfinished()

    async def qsize(self) -> int:
        """Items waiting in the queue (not counting those claimed by consumers or waiting for a retry)."""
        return await self._puts.qsize()

    async def empty(self) -> bool:
        return await self.qsize() == 0

    async def full(self) -> bool:
        return await self._puts.full()

    async def flush(self) -> None:
        """Wait until every put and acknowledgement made so far has reached Redis."""
        await self._putter.flush()
        if self._consuming is not None:
            await self._consuming.holdings.acks.flush()

    # -- closing -----------------------------------------------------------------------------------------

    async def stop_consuming(self) -> int:
        """Stop claiming items and give back those claimed but not handed out. Items in progress stay ours
        until acknowledged. Later ``get()`` calls raise ``QueueClosed``. Returns how many went back."""
        return 0 if self._consuming is None else await self._consuming.stop()

    async def close(self, timeout: float = 30.0) -> None:
        """Flush puts and acknowledgements, give back every item not acknowledged, leave, disconnect. Each
        step is bounded; what cannot reach Redis stays where recovery finds it. Puts still unsent after
        ``timeout`` fail with ``QueueClosed``."""
        if self._closed:
            return
        self._closed = True
        await self._puts.close(timeout)
        if self._consuming is not None:
            await self._consuming.close()
        await self.shards.close()

    async def _check_layout(self) -> None:
        """The shard count and kind in Redis are this one's (recorded on first use), through outages. One
        check at a time: the first wave of concurrent puts waits for it rather than each making its own."""
        if self.shards.checked:
            return
        async with self._layout_lock:
            await retrying("layout check", self.shards.check_layout, log)

    def _check_not_closed(self) -> None:
        if self._closed:
            raise QueueClosed("the queue is closed")

    def _check_open_for_puts(self) -> None:
        self._check_not_closed()
        if self._putter.shut_down:
            raise QueueShutDown("the queue was shut down")
