"""Liveness: each consuming process keeps a heartbeat key with a TTL (its lease on the items it holds), and
any live consumer may run the sweep that gives the items of dead consumers (heartbeat expired) back to the
head of the line.

The heartbeat and the sweep are separate tasks, so a slow sweep (a Redis with millions of keys to SCAN)
never delays a heartbeat. The sweep runs under a lock that lives one interval and is not released, so the
whole fleet sweeps once per interval, whatever its size. Each sweep checks the registered consumers in one
round trip and SCANs a bounded slice of the key space for unregistered processing lists, continuing where
the last sweep stopped. A live consumer's items are never taken, however long its jobs run: only an expired
heartbeat counts, never elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.core.backoff import Outage
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)

RECOVER_BATCH = 1000
SCAN_CALLS = 5  # SCAN calls (COUNT 1000 each) one sweep may spend looking for unregistered lists


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Lease:
    """Whether this consumer can still prove it owns the items it holds.

    It holds from a successful heartbeat until that heartbeat's TTL would run out (less a margin), and is
    withdrawn when a heartbeat finds the key had expired (recovery may have given the items to others) until
    the fetcher has reconciled what it holds with the processing list.
    """

    def __init__(self, ttl: float, margin: float) -> None:
        self._span = max(0.0, ttl - margin)
        self._renewed_at: float | None = None
        self._revoked = False
        self.generation = 0  # raised by each revoke, so a reconcile that began before it cannot restore
        self._changed = asyncio.Event()

    def valid(self) -> bool:
        return (
            not self._revoked
            and self._renewed_at is not None
            and time.monotonic() - self._renewed_at < self._span
        )

    def renew(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) found the key alive."""
        self._renewed_at = sent_at
        self._changed.set()

    def revoke(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` found the key expired (and set it again): the lease holds from
        then on only once ``restore()`` says what this process holds was reconciled."""
        self._revoked = True
        self._renewed_at = sent_at
        self.generation += 1

    def restore(self, generation: int) -> None:
        """A reconcile that began at ``generation`` finished: the lease holds again, unless it was revoked
        once more meanwhile (that reconcile may have read the processing list before the new lapse)."""
        if generation == self.generation:
            self._revoked = False
            self._changed.set()

    async def wait_valid(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the lease holds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.valid():
                    self._changed.clear()
                    await self._changed.wait()


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
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._id = consumer_id
        self.interval = interval
        self.ttl_ms = int(interval * 3000)
        self.lease = Lease(self.ttl_ms / 1000, margin=interval / 2)
        self._info = info
        self._on_lost = on_lost
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._scan_cursor = 0
        self._last_ok: float | None = None  # monotonic start of the last heartbeat Redis accepted
        self._failed_since_ok = False
        self.recovered = 0

    async def register(self) -> None:
        """Set the heartbeat (before anything is claimed) and start beating and sweeping."""
        await self._beat(first=True)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._beating(), name="asyncq-heartbeat"),
                asyncio.create_task(self._sweeping(), name="asyncq-sweep"),
            ]

    async def close(self, *, remove: bool) -> None:
        """Stop beating and sweeping; with ``remove``, delete the heartbeat (the consumer left cleanly)."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(task)
            if not task.done():
                task.cancel()
        if remove:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(5.0):
                    pipe = self._client.pipeline(transaction=True)
                    pipe.delete(self._keys.heartbeat(self._id))
                    pipe.srem(self._keys.consumers, self._id)
                    await pipe.execute()

    # -- the heartbeat -------------------------------------------------------------------------------------

    async def _beat(self, *, first: bool = False) -> None:
        value = json.dumps(self._info(), separators=(",", ":"))
        sent_at = time.monotonic()
        try:
            alive = await self._scripts.heartbeat(self._id, value, self.ttl_ms, first=first)
        except (RedisError, OSError):
            self._failed_since_ok = True
            raise
        previous, self._last_ok = self._last_ok, sent_at
        failed, self._failed_since_ok = self._failed_since_ok, False
        if first or alive:
            self.lease.renew(sent_at)
            return
        self.lease.revoke(sent_at)
        gap = sent_at - previous if previous is not None else 0.0
        if failed:
            cause = f"Redis was unreachable for about {gap:.1f} s"
        else:
            cause = (
                f"the event loop was blocked for about {gap:.1f} s (a handler that does not await? "
                "run blocking code in a plain def handler, which runs in a thread)"
            )
        log.warning(
            "consumer %s: heartbeat had expired because %s; items it held may have been redelivered",
            self._id,
            cause,
        )
        await self._on_lost()

    async def _beating(self) -> None:
        outage = Outage("heartbeat", log)
        while not await self._wait(self.interval):
            try:
                await self._beat()
                outage.recovered()
            except (RedisError, OSError) as exc:
                outage.failed(exc)

    # -- the sweep -----------------------------------------------------------------------------------------

    async def _sweeping(self) -> None:
        # Sweep at once too, not only after the first interval: in a crash loop (consumers killed and
        # restarted every few seconds) consumers that die young would otherwise never sweep at all.
        outage = Outage("recovery sweep", log)
        while True:
            try:
                await self.sweep()
                outage.recovered()
            except (RedisError, OSError) as exc:
                outage.failed(exc)
            if await self._wait(self.interval):
                return

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True once stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def sweep(self) -> int:
        """Recover the items of every consumer whose heartbeat expired; returns how many moved.

        Only one consumer of the queue sweeps per interval: the lock expires by itself, never released.
        """
        token = f"{self._id}-{os.urandom(4).hex()}"
        lock_ms = max(100, int(self.interval * 1000))
        if not await self._scripts.lock(token, lock_ms):
            return 0
        moved = 0
        for consumer in await self._dead_candidates():
            moved += await self._recover(consumer)
        self.recovered += moved
        return moved

    async def _dead_candidates(self) -> list[str]:
        """Consumers other than this one whose heartbeat key is missing (RECOVER checks again, atomically)."""
        members = {_text(m) for m in await self._client.smembers(self._keys.consumers)}
        members |= await self._scan_slice()
        members.discard(self._id)
        ordered = sorted(members)
        if not ordered:
            return []
        pipe = self._client.pipeline(transaction=False)
        for consumer in ordered:
            pipe.exists(self._keys.heartbeat(consumer))
        alive = await pipe.execute()
        return [consumer for consumer, up in zip(ordered, alive, strict=True) if not up]

    async def _scan_slice(self) -> set[str]:
        """Owners of processing lists found by the next few SCAN calls (the cursor carries over)."""
        found: set[str] = set()
        for _ in range(SCAN_CALLS):
            cursor, keys = await self._client.scan(
                cursor=self._scan_cursor, match=self._keys.processing_pattern, count=1000
            )
            self._scan_cursor = int(cursor)
            found.update(self._keys.consumer_of(key) for key in keys)
            if self._scan_cursor == 0:
                break
        return found

    async def _recover(self, consumer: str) -> int:
        total = 0
        while True:
            moved = await self._scripts.recover(consumer, RECOVER_BATCH)
            if moved <= 0:
                break
            total += moved
            if moved < RECOVER_BATCH:
                break
        if total:
            log.warning("recovered %d item(s) of consumer %s (heartbeat expired)", total, consumer)
        return total
