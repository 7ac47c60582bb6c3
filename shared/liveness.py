"""Liveness-based recovery: each consuming process keeps a heartbeat key with a TTL; any live consumer may run
the sweep that gives the items of dead consumers (heartbeat expired) back to the head of the line.

The sweep runs under a lock with a TTL, so a killed sweeper never blocks recovery. It looks at the registered
consumers every pass and SCANs for unregistered processing lists every ``scan_every`` passes, so nothing is
orphaned. A live consumer's items are never taken, however long its jobs run: only an expired heartbeat
counts, never elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.backoff import Outage
from shared.keys import Keys
from shared.scripts import Scripts

log = logging.getLogger(__name__)

RECOVER_BATCH = 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Liveness:
    """Heartbeat of consumer ``consumer_id`` plus the recovery sweep."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        consumer_id: str,
        interval: float,
        info: Callable[[], dict[str, Any]],
        on_lost: Callable[[], Awaitable[None]],
        scan_every: int = 10,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._id = consumer_id
        self.interval = interval
        self.ttl_ms = int(interval * 3000)
        self._info = info
        self._on_lost = on_lost
        self._scan_every = scan_every
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._passes = 0
        self.recovered = 0

    async def register(self) -> None:
        """Set the heartbeat (before anything is claimed) and start beating."""
        await self._beat(first=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="asyncq-heartbeat")

    async def close(self, *, remove: bool) -> None:
        """Stop beating; with ``remove``, delete the heartbeat (the consumer left cleanly)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()
        if remove:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(5.0):
                    pipe = self._client.pipeline(transaction=True)
                    pipe.delete(self._keys.heartbeat(self._id))
                    pipe.srem(self._keys.consumers, self._id)
                    await pipe.execute()

    async def _beat(self, *, first: bool = False) -> None:
        value = json.dumps(self._info(), separators=(",", ":"))
        key = self._keys.heartbeat(self._id)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(key, value, px=self.ttl_ms, xx=not first)
        pipe.sadd(self._keys.consumers, self._id)
        ok, _ = await pipe.execute()
        if not ok:
            log.warning(
                "consumer %s: heartbeat had expired (Redis unreachable for over %.0f s?); items it held may "
                "have been redelivered",
                self._id,
                self.ttl_ms / 1000,
            )
            await self._client.set(key, value, px=self.ttl_ms)
            await self._on_lost()

    async def _run(self) -> None:
        outage = Outage("heartbeat", log)
        # Sweep once at start, not only after the first interval: in a crash loop (consumers killed and
        # restarted every few seconds) consumers that die young would otherwise never sweep at all.
        with contextlib.suppress(RedisError, OSError):
            await self.sweep()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._stop.wait()
            if self._stop.is_set():
                return
            try:
                await self._beat()
                await self.sweep()
                outage.recovered()
            except (RedisError, OSError) as exc:
                outage.failed(exc)

    async def sweep(self) -> int:
        """Recover the items of every consumer whose heartbeat expired; returns how many moved."""
        token = f"{self._id}-{os.urandom(4).hex()}"
        # The lock only spares duplicate work (RECOVER is atomic and checks the heartbeat itself), so it lives one
        # interval, not a heartbeat TTL: a sweeper killed mid-sweep delays the others' next sweep by at most that.
        lock_ms = max(100, int(self.interval * 1000))
        if not await self._client.set(self._keys.sweep_lock, token, nx=True, px=lock_ms):
            return 0
        moved = 0
        try:
            for consumer in await self._candidates():
                if consumer != self._id:
                    moved += await self._recover(consumer)
        finally:
            await self._scripts.unlock(keys=[self._keys.sweep_lock], args=[token])
        self.recovered += moved
        return moved

    async def _candidates(self) -> set[str]:
        members = {_text(m) for m in await self._client.smembers(self._keys.consumers)}
        self._passes += 1
        if self._passes % self._scan_every == 1:
            async for key in self._client.scan_iter(match=self._keys.processing_pattern, count=1000):
                members.add(self._keys.consumer_of(key))
        return members

    async def _recover(self, consumer: str) -> int:
        keys = self._keys
        total = 0
        while True:
            moved = int(
                await self._scripts.recover(
                    keys=[
                        keys.heartbeat(consumer),
                        keys.processing(consumer),
                        keys.queue,
                        keys.consumers,
                        keys.totals,
                    ],
                    args=[consumer, RECOVER_BATCH],
                )
            )
            if moved <= 0:
                break
            total += moved
            if moved < RECOVER_BATCH:
                break
        if total:
            log.warning("recovered %d item(s) of consumer %s (heartbeat expired)", total, consumer)
        return total
