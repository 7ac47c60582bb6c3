"""The consuming side of a RedisQueue, created on the first ``get()``: fetcher, heartbeat, the items handed
out and not yet marked done, and their batched acknowledgements."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from collections import deque
from typing import Any

import redis.asyncio as aioredis

from asyncq.consuming.fetcher import Fetcher
from asyncq.consuming.liveness import Liveness
from asyncq.consuming.stats import ConsumerStats
from asyncq.core.backoff import retrying
from asyncq.core.batcher import Batcher
from asyncq.core.envelope import Message, dead_letter_record
from asyncq.core.keys import Keys
from asyncq.core.retries import RetryPolicy
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


class Consuming:
    """Everything one consuming process keeps about its items; ``RedisQueue`` delegates to it."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        consumer_id: str,
        stats: ConsumerStats,
        prefetch: int,
        batch_size: int,
        block_timeout: float,
        heartbeat_interval: float,
        retry: RetryPolicy,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self.consumer_id = consumer_id
        self._processing = keys.processing(consumer_id)
        self.stats = stats
        self.concurrency = 0
        # Keyed by item id: two copies of one item (twins an older version could leave) are one item here.
        self.in_progress: dict[str, Message] = {}
        self._by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], deque[Message]] = weakref.WeakKeyDictionary()
        self.acks: Batcher[bytes] = Batcher("ack", self._send_acks, retry_all=True, max_batch=1000)
        pool = client.connection_pool
        options = dict(pool.connection_kwargs)
        options["socket_timeout"] = block_timeout + 10.0  # above the blocking pop's server-side timeout
        self._blocking = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool(
                connection_class=pool.connection_class, max_connections=1, **options
            ),
            single_connection_client=True,
        )
        self.liveness = Liveness(
            client=client,
            scripts=scripts,
            keys=keys,
            consumer_id=consumer_id,
            interval=heartbeat_interval,
            info=self._heartbeat_info,
            on_lost=self._on_lost_heartbeat,
        )
        self.fetcher = Fetcher(
            scripts=scripts,
            blocking=self._blocking,
            keys=keys,
            consumer_id=consumer_id,
            prefetch=prefetch,
            batch_size=batch_size,
            block_timeout=block_timeout,
            retry=retry,
            lease=self.liveness.lease,
            on_bad=self._on_bad,
            reconcile=self._reconcile,
        )
        self.fetcher.start(self.liveness.register)

    # -- handing out and marking done ----------------------------------------------------------------------

    async def get(self) -> Message:
        message = await self.fetcher.get()
        while message.id in self.in_progress:
            # A copy of an item this process is already handling: done when that one is. Acknowledging
            # the copy removes it from the processing list and counts it once for join().
            log.warning("dropped a second copy of item %s, already in progress here", message.id)
            self.acks.submit(message.raw, wait=False)
            message = await self.fetcher.get()
        self.in_progress[message.id] = message
        task = asyncio.current_task()
        if task is not None:
            mine = self._by_task.get(task)
            if mine is None:
                mine = self._by_task[task] = deque()
            while mine and mine[0].id not in self.in_progress:
                mine.popleft()  # marked through ack(message) rather than task_done(): forget it here
            mine.append(message)
        self.stats.latency.record(max(0.0, time.time() - message.enqueued_at))
        return message

    def pop_unmarked(self) -> Message:
        """The oldest item the calling task got and has not marked, else the process's oldest."""
        task = asyncio.current_task()
        mine = self._by_task.get(task) if task is not None else None
        while mine:
            message = mine.popleft()
            if self.in_progress.get(message.id) is message:
                return message
        # Under asyncio.wait_for() on 3.11 get() ran in another task: fall back to the oldest item.
        for message in self.in_progress.values():
            return message
        raise ValueError("task_done() called more times than there were items got")

    def ack(self, message: Message) -> None:
        if self.in_progress.get(message.id) is not message:
            raise ValueError("task_done() called more times than there were items got")
        del self.in_progress[message.id]
        self.stats.processed += 1
        self.acks.submit(message.raw, wait=False)

    async def _send_acks(self, raws: list[bytes], seq: int) -> int:
        await self._scripts.ack(self.consumer_id, raws)
        return len(raws)

    def _release(self, message: Message) -> None:
        if self.in_progress.get(message.id) is message:
            del self.in_progress[message.id]

    async def retry(self, message: Message, delay: float) -> bool:
        self._release(message)
        self.stats.failed += 1
        self.stats.retried += 1
        done = await retrying("retry", lambda: self._scripts.retry(self.consumer_id, message.raw, delay), log)
        self.fetcher.due_in(delay)
        return bool(done)

    async def dead_letter(self, message: Message, reason: str, *, failed: bool) -> bool:
        self._release(message)
        if failed:
            self.stats.failed += 1
        return await self._dead(message.raw, reason, counted=True, failed=failed, item_id=message.id)

    async def _dead(
        self, raw: bytes, reason: str, *, counted: bool, failed: bool = False, item_id: str | None = None
    ) -> bool:
        # The whole value, however large: the dead letter is the only copy, and requeue needs all of it.
        record = dead_letter_record(raw, reason, self.consumer_id, item_id)
        self.stats.dead_lettered += 1
        log.warning("dead letter (%s): %s", item_id or "not an envelope", reason)
        done = await retrying(
            "dead-letter",
            lambda: self._scripts.dead(self.consumer_id, raw, record, counted=counted, failed=failed),
            log,
        )
        return bool(done)

    async def _on_bad(self, raw: bytes, reason: str, counted: bool) -> None:
        await self._dead(raw, reason, counted=counted)

    # -- liveness ------------------------------------------------------------------------------------------

    def _heartbeat_info(self) -> dict[str, Any]:
        return {
            "id": self.consumer_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "in_progress": len(self.in_progress),
            "buffered": len(self.fetcher.buffer),
            "at": time.time(),
            **self.stats.to_json(),
        }

    async def _on_lost_heartbeat(self) -> None:
        self.fetcher.request_reconcile()

    async def _reconcile(self) -> None:
        """Make our processing list and what this process holds agree (run by the fetcher only).

        Buffered items that recovery already gave back are dropped; listed items that nobody here holds
        (a blocking pop whose reply was lost) go back to the head of the line.
        """
        generation = self.liveness.lease.generation
        held = {r for r in await self._client.lrange(self._processing, 0, -1) if isinstance(r, bytes)}
        dropped = self.fetcher.keep_only(held)
        if dropped:
            log.warning("dropped %d prefetched item(s) that recovery gave back to the queue", dropped)
        held_here = [*self.in_progress.values(), *self.fetcher.buffer]
        keep = [*(m.raw for m in held_here), *self.acks.pending()]
        given = await self._scripts.release(self.consumer_id, keep)
        if given:
            log.warning("gave back %d item(s) claimed by a pop whose reply was lost", given)
        self.liveness.lease.restore(generation)

    # -- stopping ------------------------------------------------------------------------------------------

    async def stop(self) -> int:
        """Stop claiming; give back what was claimed and not handed out. Returns how many went back."""
        await self.fetcher.stop()
        given = await retrying(
            "release",
            lambda: self._scripts.release(
                self.consumer_id, [*(m.raw for m in self.in_progress.values()), *self.acks.pending()]
            ),
            log,
            attempts=5,
        )
        return int(given or 0)

    async def close(self) -> None:
        """Flush acknowledgements, give back everything else, leave (each step bounded)."""
        await self.fetcher.stop()
        try:
            async with asyncio.timeout(10.0):
                await self.acks.flush()
        except TimeoutError:
            log.warning("%d acknowledgement(s) could not reach Redis; those items will be redelivered", len(self.acks))
        self.in_progress.clear()
        await retrying(
            "release",
            lambda: self._scripts.release(self.consumer_id, []),
            log,
            attempts=3,
        )
        await self.liveness.close(remove=True)
        await self._blocking.aclose(close_connection_pool=True)  # the pool is ours, made for this client
