"""The consuming side of a RedisQueue in one process, created on the first ``get()``.

It builds the parts and gives each its own job: the ``Liveness`` heartbeat renews the ``Lease``; the
``Sweeper`` recovers dead consumers' items; the ``Fetcher`` owns the claimed buffer, the processing hash
and list and their reconciliation; ``Holdings`` keeps what was handed out and sends the acknowledgements. The parts
share state (the lease, the holdings), never callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncq.consuming.burial import bury
from asyncq.consuming.claimer import Claimer
from asyncq.consuming.fetcher import Fetcher
from asyncq.consuming.holdings import Holdings
from asyncq.consuming.liveness import Liveness
from asyncq.consuming.prefetch import Prefetch
from asyncq.consuming.sharded_claimer import Presence, ShardedClaimer
from asyncq.consuming.stats import ConsumerStats
from asyncq.consuming.sweep import Sweeper
from asyncq.core.backoff import retrying
from asyncq.core.closing import ShutdownWatch
from asyncq.core.envelope import Message
from asyncq.core.retries import RetryPolicy
from asyncq.core.shards import Shards

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumeSettings:
    """How a RedisQueue consumes: see its constructor."""

    prefetch: int | None  # None: adaptive (asyncq.consuming.prefetch)
    batch_size: int
    block_timeout: float
    heartbeat_interval: float
    retry: RetryPolicy


class ConsumerSession:
    """Everything one consuming process keeps about its items; ``RedisQueue`` delegates to it."""

    def __init__(self, *, shards: Shards, consumer_id: str, stats: ConsumerStats, settings: ConsumeSettings) -> None:
        parts = self._parts = shards.parts
        home = shards.home
        self._scripts = [part.scripts for part in parts]
        self.consumer_id = consumer_id
        self.stats = stats
        interval = settings.heartbeat_interval
        self.holdings = Holdings(self._scripts, consumer_id, stats)
        presence = self._presence = Presence(int(interval * 3000))
        self.liveness = Liveness(
            client=home.client,
            scripts=home.scripts,
            keys=home.keys,
            consumer_id=consumer_id,
            interval=interval,
            info=self._heartbeat_info,
            shards=self._scripts,
            present=lambda: list(presence.beating),
        )
        self.sweeper = Sweeper(parts=parts, consumer_id=consumer_id, interval=interval)
        self._claimer: Claimer | ShardedClaimer
        self.shutdown = ShutdownWatch(parts)
        # A priority queue's waiting items are a zset, which no blocking pop serves: its consumers wait for
        # the 'ready' notification, as a sharded queue's do.
        if shards.sharded or shards.kind == "priority":
            self._claimer = ShardedClaimer(
                parts=parts,
                consumer_id=consumer_id,
                block_timeout=settings.block_timeout,
                presence=presence,
                interval=interval,
            )
        else:
            self._claimer = Claimer(
                client=home.client,
                scripts=home.scripts,
                keys=home.keys,
                consumer_id=consumer_id,
                block_timeout=settings.block_timeout,
                events=home.events,
            )
        for part in parts:
            part.events.on_wake = self._waker(part.index)
        self.fetcher = Fetcher(
            claimer=self._claimer,
            scripts=self._scripts,
            consumer_id=consumer_id,
            holdings=self.holdings,
            lease=self.liveness.lease,
            retry=settings.retry,
            stats=stats,
            prefetch=Prefetch(settings.prefetch, ceiling=settings.batch_size),
            batch_size=settings.batch_size,
            shutdown=self.shutdown,
        )
        self.liveness.start()
        self.sweeper.start()
        self.fetcher.start()

    # -- handing out and marking done ----------------------------------------------------------------------

    async def get(self) -> Message:
        while True:
            message = await self.fetcher.get()
            if self.holdings.take(message):
                return message

    async def retry(self, message: Message, delay: float) -> bool:
        self._presence.used(message.shard)  # its shard is not left while the step is on its way
        self.holdings.release(message)
        self.stats.failed += 1
        self.stats.retried += 1
        scripts = self._scripts[message.shard]
        done = await retrying("retry", lambda: scripts.retry(self.consumer_id, message.handle, delay), log)
        self.fetcher.due_in(delay, message.shard)
        return bool(done)

    async def dead_letter(self, message: Message, reason: str, *, failed: bool) -> bool:
        self._presence.used(message.shard)
        self.holdings.release(message)
        return await bury(
            self._scripts[message.shard],
            self.consumer_id,
            self.stats,
            message.raw,
            reason,
            handle=message.handle,
            counted=True,
            failed=failed,
            item_id=message.id,
            keyed=message.key is not None,
        )

    def _waker(self, shard: int) -> Callable[[str], None]:
        def wake(what: str) -> None:
            if what == "shutdown":
                self.shutdown.stale()
                self.fetcher.poke()
            self._claimer.wake(shard)

        return wake

    def _kept(self, shard: int) -> list[bytes]:
        return list(self.holdings.handles(shard))

    def _heartbeat_info(self) -> dict[str, Any]:
        return {
            "id": self.consumer_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.stats.concurrency,
            "in_progress": len(self.holdings),
            "buffered": len(self.fetcher.buffer),
            "at": time.time(),
            **self.stats.to_json(),
        }

    # -- stopping ------------------------------------------------------------------------------------------

    async def stop(self) -> int:
        """Stop claiming; give back what was claimed and not handed out. Returns how many went back."""
        await self.fetcher.stop()
        if self.fetcher.failure is not None:
            return 0  # Redis refused a step for good: giving back fails too; recovery returns the items
        given = await retrying("release", lambda: self._claimer.release(self._kept), log, attempts=5)
        return int(given or 0)

    async def close(self) -> None:
        """Flush acknowledgements, give back everything else, leave (each step bounded)."""
        await self.fetcher.stop()
        await self.sweeper.close()
        acks = self.holdings.acks
        try:
            async with asyncio.timeout(10.0):
                await acks.flush()
        except TimeoutError:
            log.warning("%d acknowledgement(s) could not reach Redis; those items will be redelivered", len(acks))
        self.holdings.in_progress.clear()
        refused = self.fetcher.failure is not None
        if not refused:
            await retrying("release", lambda: self._claimer.release(lambda shard: []), log, attempts=3)
        await self.liveness.close(remove=not refused)
        await self._claimer.close(remove=not refused)
        for part in self._parts:
            part.events.on_wake = None
