"""``RedisQueue``: asyncio.Queue's producer/consumer contract across processes and machines, over Redis.

Producers ``await q.put(item)``; consumers ``item = await q.get()`` then ``q.task_done()``; ``await q.join()``
returns once every item put under this name, by any process, is done. See ``shared.keys`` for the key layout
and ``shared.scripts`` for the server-side steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import weakref
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.backoff import Outage
from shared.batcher import Batcher
from shared.connection import TLSOptions, connect, is_transient, resolve_url
from shared.envelope import DEFAULT_MAX_ITEM_BYTES, Message, dead_letter_record, encode
from shared.errors import QueueClosed
from shared.events import Events
from shared.fetcher import Fetcher
from shared.keys import Keys
from shared.liveness import Liveness
from shared.scripts import Scripts
from shared.stats import ConsumerStats

log = logging.getLogger(__name__)

_DEAD_PREVIEW = 64 * 1024  # an oversized value is kept in its dead letter only up to this size


class RedisQueue:
    """A FIFO queue shared by every process that opens the same ``name`` on the same Redis.

    ``maxsize`` bounds the items waiting in the queue across all processes (``put`` waits for room).
    ``prefetch`` lets a consuming process claim that many items beyond its waiting ``get()`` calls.
    An item whose delivery fails ``max_deliveries`` times goes to the dead letters.
    """

    def __init__(
        self,
        name: str = "asyncq",
        *,
        url: str | None = None,
        redis: aioredis.Redis | None = None,
        maxsize: int = 0,
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        max_deliveries: int = 5,
        prefetch: int = 0,
        batch_size: int = 500,
        heartbeat_interval: float = 2.0,
        block_timeout: float = 2.0,
        tls: TLSOptions | None = None,
    ) -> None:
        if maxsize < 0 or prefetch < 0 or batch_size < 1 or max_deliveries < 1:
            raise ValueError("maxsize and prefetch must be >= 0; batch_size and max_deliveries >= 1")
        self.keys = Keys(name)
        self.name = name
        self.url = resolve_url(url)
        self.maxsize = maxsize
        self.max_item_bytes = max_item_bytes
        self.max_deliveries = max_deliveries
        self.heartbeat_interval = heartbeat_interval
        self._owns_client = redis is None
        self._client = redis if redis is not None else connect(self.url, tls=tls)
        self._scripts = Scripts(self._client)
        self._block_timeout = block_timeout
        self._prefetch = prefetch
        self._batch_size = batch_size
        self.consumer_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.stats = ConsumerStats()
        self.concurrency = 0  # informational: published with the heartbeat
        self._puts: Batcher[bytes] = Batcher("put", self._send_puts, wait_room=self._wait_room, max_batch=1000)
        self._acks: Batcher[bytes] = Batcher("ack", self._send_acks, retry_all=True, max_batch=1000)
        self._events: Events | None = None
        self._fetcher: Fetcher | None = None
        self._liveness: Liveness | None = None
        self._blocking: aioredis.Redis | None = None
        self._in_progress: dict[bytes, Message] = {}
        self._by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], deque[Message]] = weakref.WeakKeyDictionary()
        self._closed = False

    @property
    def in_progress(self) -> int:
        """Items this process got and has not yet marked done."""
        return len(self._in_progress)

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

    # -- producing ---------------------------------------------------------------------------------------

    async def put(self, item: Any) -> None:
        """Put ``item`` (JSON-serialisable) at the end of the queue; waits while the queue is full.

        Raises ``TypeError`` or ``ItemTooLarge`` before anything reaches Redis. During an outage the put is
        retried until Redis is back; an error Redis reports is raised here. Cancelling a put whose batch is
        already in flight may still enqueue it (at least once, never lost).
        """
        self._check_not_closed()
        raw = encode(item, max_bytes=self.max_item_bytes)
        future = self._puts.submit(raw)
        assert future is not None
        await future

    async def put_many(self, items: Iterable[Any]) -> int:
        """Put several items, in order, in as few round trips as possible. Returns how many."""
        self._check_not_closed()
        raws = [encode(item, max_bytes=self.max_item_bytes) for item in items]
        futures = [self._puts.submit(raw) for raw in raws]
        await asyncio.gather(*(f for f in futures if f is not None))
        return len(raws)

    async def _send_puts(self, raws: list[bytes]) -> int:
        keys = self.keys
        taken = await self._scripts.put(
            keys=[keys.queue, keys.unfinished, keys.full, keys.totals], args=[self.maxsize, *raws]
        )
        return int(taken)

    async def _wait_room(self) -> None:
        events = await self._ensure_events()
        events.space.clear()
        if await self.full():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await events.space.wait()

    # -- consuming ---------------------------------------------------------------------------------------

    async def get(self) -> Any:
        """Remove and return an item, waiting until one is available (the item's payload)."""
        return (await self.get_message()).payload

    async def get_message(self) -> Message:
        """Like ``get()``, but the whole ``Message``: id, payload, enqueue time, attempts."""
        self._check_not_closed()
        fetcher = self._ensure_fetcher()
        message = await fetcher.get()
        self._in_progress[message.raw] = message
        task = asyncio.current_task()
        if task is not None:
            self._by_task.setdefault(task, deque()).append(message)
        self.stats.latency.record(max(0.0, time.time() - message.enqueued_at))
        return message

    def task_done(self) -> None:
        """Mark done the oldest item that the calling task got and has not marked (else the process's oldest).

        Like asyncio.Queue's, a plain call; the acknowledgement reaches Redis in the background, batched.
        ``join()`` and ``close()`` flush it. Raises ``ValueError`` if called more times than items were got.
        """
        message = self._pop_unmarked()
        self.ack(message)

    def ack(self, message: Message) -> None:
        """Mark ``message`` done (``task_done()`` for a particular message)."""
        if self._in_progress.pop(message.raw, None) is None:
            raise ValueError("task_done() called more times than there were items got")
        self.stats.processed += 1
        self._acks.submit(message.raw, wait=False)

    async def _send_acks(self, raws: list[bytes]) -> int:
        keys = self.keys
        await self._scripts.ack(
            keys=[keys.processing(self.consumer_id), keys.unfinished, keys.totals],
            args=[keys.events, *raws],
        )
        return len(raws)

    async def retry(self, message: Message, delay: float) -> bool:
        """Give ``message`` back for another attempt after ``delay`` seconds (kept in Redis, not here).

        Past ``max_deliveries`` it goes to the dead letters instead. Returns False if recovery had already
        taken it back (it is then redelivered anyway).
        """
        if message.delivery >= self.max_deliveries:
            return await self.dead_letter(message, f"failed {message.delivery} times (max_deliveries)")
        self._forget(message)
        keys = self.keys
        self.stats.failed += 1
        self.stats.retried += 1
        done = await self._retrying(
            "retry",
            lambda: self._scripts.retry(
                keys=[keys.processing(self.consumer_id), keys.delayed, keys.totals],
                args=[message.raw, max(0, int(delay * 1000))],
            ),
        )
        return bool(done)

    async def dead_letter(self, message: Message, reason: str, *, failed: bool = True) -> bool:
        """Move ``message`` to the dead letters with ``reason``; it counts as done for ``join()``."""
        self._forget(message)
        if failed:
            self.stats.failed += 1
        return await self._dead(message.raw, reason, counted=True, failed=failed, item_id=message.id)

    async def _dead(
        self, raw: bytes, reason: str, *, counted: bool, failed: bool = False, item_id: str | None = None
    ) -> bool:
        keys = self.keys
        kept = raw if len(raw) <= _DEAD_PREVIEW else raw[:_DEAD_PREVIEW]
        record = dead_letter_record(kept, reason, self.consumer_id, item_id)
        self.stats.dead_lettered += 1
        log.warning("dead letter (%s): %s", item_id or "not an envelope", reason)
        done = await self._retrying(
            "dead-letter",
            lambda: self._scripts.dead(
                keys=[keys.processing(self.consumer_id), keys.dead, keys.unfinished, keys.totals],
                args=[keys.events, raw, record, int(counted), int(failed)],
            ),
        )
        return bool(done)

    async def _on_bad(self, raw: bytes, reason: str, counted: bool) -> None:
        await self._dead(raw, reason, counted=counted)

    def _pop_unmarked(self) -> Message:
        task = asyncio.current_task()
        mine = self._by_task.get(task) if task is not None else None
        while mine:
            message = mine.popleft()
            if message.raw in self._in_progress:
                return message
        # Under asyncio.wait_for() on 3.11 get() ran in another task: fall back to the oldest item.
        for message in self._in_progress.values():
            return message
        raise ValueError("task_done() called more times than there were items got")

    def _forget(self, message: Message) -> None:
        self._in_progress.pop(message.raw, None)

    def _ensure_fetcher(self) -> Fetcher:
        if self._fetcher is None:
            pool = self._client.connection_pool
            options = dict(pool.connection_kwargs)
            options["socket_timeout"] = self._block_timeout + 10.0
            self._blocking = aioredis.Redis(
                connection_pool=aioredis.ConnectionPool(
                    connection_class=pool.connection_class, max_connections=1, **options
                ),
                single_connection_client=True,
            )
            self._liveness = Liveness(
                client=self._client,
                scripts=self._scripts,
                keys=self.keys,
                consumer_id=self.consumer_id,
                interval=self.heartbeat_interval,
                info=self._heartbeat_info,
                on_lost=self._on_lost_heartbeat,
            )
            self._fetcher = Fetcher(
                scripts=self._scripts,
                blocking=self._blocking,
                keys=self.keys,
                consumer_id=self.consumer_id,
                prefetch=self._prefetch,
                batch_size=self._batch_size,
                block_timeout=self._block_timeout,
                max_item_bytes=self.max_item_bytes,
                max_deliveries=self.max_deliveries,
                on_bad=self._on_bad,
                reconcile=self._reconcile,
            )
            self._fetcher.start(self._liveness.register)
        return self._fetcher

    def _heartbeat_info(self) -> dict[str, Any]:
        buffered = len(self._fetcher.buffer) if self._fetcher is not None else 0
        return {
            "id": self.consumer_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "in_progress": self.in_progress,
            "buffered": buffered,
            "at": time.time(),
            **self.stats.to_json(),
        }

    async def _on_lost_heartbeat(self) -> None:
        if self._fetcher is not None:
            self._fetcher.request_reconcile()

    async def _reconcile(self) -> None:
        """Make our processing list and what this process holds agree (run by the fetcher only).

        Buffered items that recovery already gave back are dropped; listed items that nobody here holds
        (a blocking pop whose reply was lost) go back to the head of the line.
        """
        assert self._fetcher is not None
        processing = self.keys.processing(self.consumer_id)
        held = {r for r in await self._client.lrange(processing, 0, -1) if isinstance(r, bytes)}
        dropped = self._fetcher.keep_only(held)
        if dropped:
            log.warning("dropped %d prefetched item(s) that recovery gave back to the queue", dropped)
        keep = [*self._in_progress, *self._acks.pending(), *(m.raw for m in self._fetcher.buffer)]
        given = int(await self._scripts.release(keys=[processing, self.keys.queue], args=keep))
        if given:
            log.warning("gave back %d item(s) claimed by a pop whose reply was lost", given)

    # -- waiting for completion, sizes -------------------------------------------------------------------

    async def join(self) -> None:
        """Wait until every item put under this name, by any process, has been marked done."""
        await self._acks.flush()
        events = await self._ensure_events()
        outage = Outage("join", log)
        while True:
            events.done.clear()
            try:
                left = int(await self._client.get(self.keys.unfinished) or 0)
                outage.recovered()
            except (RedisError, OSError) as exc:
                if isinstance(exc, RedisError) and not is_transient(exc):
                    raise
                await asyncio.sleep(outage.failed(exc))
                continue
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await events.done.wait()

    async def unfinished(self) -> int:
        """How many items were put and are not yet done (what ``join()`` waits for)."""
        return int(await self._client.get(self.keys.unfinished) or 0)

    async def qsize(self) -> int:
        """Items waiting in the queue (not counting those claimed by consumers or waiting for a retry)."""
        return int(await self._client.llen(self.keys.queue))

    async def empty(self) -> bool:
        return await self.qsize() == 0

    async def full(self) -> bool:
        return self.maxsize > 0 and await self.qsize() >= self.maxsize

    async def flush(self) -> None:
        """Wait until every put and acknowledgement made so far has reached Redis."""
        await self._puts.flush()
        await self._acks.flush()

    # -- closing -----------------------------------------------------------------------------------------

    async def stop_consuming(self) -> int:
        """Stop claiming items and give back those claimed but not handed out. Items in progress stay ours
        until acknowledged. Later ``get()`` calls raise ``QueueClosed``. Returns how many went back."""
        if self._fetcher is None:
            return 0
        await self._fetcher.stop()
        given = await self._retrying(
            "release",
            lambda: self._scripts.release(
                keys=[self.keys.processing(self.consumer_id), self.keys.queue],
                args=[*self._in_progress, *self._acks.pending()],
            ),
            attempts=5,
        )
        return int(given or 0)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush puts and acknowledgements, give back every item not acknowledged, leave, disconnect.

        Each step is bounded; what cannot reach Redis stays where recovery finds it. Puts still unsent after
        ``timeout`` fail with ``QueueClosed``.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._puts.flush()
        dropped = self._puts.fail_all(QueueClosed("the queue was closed before the put reached Redis"))
        if dropped:
            log.error("%d put(s) could not reach Redis before close()", dropped)
        if self._fetcher is not None:
            await self._fetcher.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await self._acks.flush()
            self._in_progress.clear()
            await self._retrying(
                "release",
                lambda: self._scripts.release(keys=[self.keys.processing(self.consumer_id), self.keys.queue], args=[]),
                attempts=3,
            )
        if self._liveness is not None:
            await self._liveness.close(remove=True)
        if self._events is not None:
            await self._events.close()
        with contextlib.suppress(RedisError, OSError):
            if self._blocking is not None:
                await self._blocking.aclose()
            if self._owns_client:
                await self._client.aclose()

    # -- helpers -----------------------------------------------------------------------------------------

    def _check_not_closed(self) -> None:
        if self._closed:
            raise QueueClosed("the queue is closed")

    async def _ensure_events(self) -> Events:
        if self._events is None:
            self._events = Events(self._client, self.keys.events)
        await self._events.ensure_listening()
        return self._events

    async def _retrying(self, what: str, call: Any, attempts: int | None = None) -> Any:
        """Run ``call()`` until it succeeds, backing off through transient failures (``attempts`` bounds it)."""
        outage = Outage(what, log)
        tries = 0
        while True:
            try:
                result = await call()
                outage.recovered()
                return result
            except (RedisError, OSError) as exc:
                tries += 1
                if (isinstance(exc, RedisError) and not is_transient(exc)) or (
                    attempts is not None and tries >= attempts
                ):
                    if attempts is not None:
                        log.warning("%s failed (%s); recovery will handle it", what, exc)
                        return None
                    raise
                await asyncio.sleep(outage.failed(exc))
