"""Recovery: any live consumer may run the sweep that gives the items of dead consumers (heartbeat
expired) back to the head of the line.

The sweep runs in a task of its own, under a lock that lives one interval and is never released, so the
whole fleet sweeps once per interval whatever its size. Each sweep checks the registered consumers in one
round trip and SCANs a bounded slice of the key space for unregistered processing hashes and lists, going on where the
last sweep stopped, so a Redis with millions of other keys costs a few milliseconds per sweep. A live
consumer's items are never taken, however long its jobs run: only an expired heartbeat counts, never elapsed
time (RECOVER checks it atomically).

On a sharded queue the home shard (0) holds the lock and the registry, and its heartbeats tell who is dead;
a dead consumer's lists are recovered on every shard (each shard's RECOVER checks that shard's heartbeat of
it), the home shard last, since emptying its list there unregisters it. Each sweep's SCAN slice looks at one
shard in turn, so the idle cost does not grow with the shard count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from redis.exceptions import RedisError

from asyncq.core.backoff import Outage
from asyncq.core.failures import is_transient
from asyncq.core.shards import Shard

log = logging.getLogger(__name__)

RECOVER_BATCH = 1000
SCAN_CALLS = 5  # SCAN calls (COUNT 1000 each) one sweep may spend looking for unregistered lists


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Sweeper:
    """Sweeps every ``interval`` seconds on behalf of consumer ``consumer_id`` (never recovering itself)."""

    def __init__(self, *, parts: list[Shard], consumer_id: str, interval: float) -> None:
        self._parts = parts
        home = parts[0]
        self._client = home.client
        self._scripts = home.scripts
        self._keys = home.keys
        self._id = consumer_id
        self.interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scan_cursor = 0
        self._scan_shard = 0
        self.recovered = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="asyncq-sweep")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()

    async def _run(self) -> None:
        # Sweep at once too, not only after the first interval: in a crash loop (consumers killed and
        # restarted every few seconds) consumers that die young would otherwise never sweep at all.
        outage = Outage("recovery sweep", log)
        while not self._stop.is_set():
            try:
                await self.sweep()
                outage.recovered()
            except (RedisError, OSError) as exc:
                if isinstance(exc, RedisError) and not is_transient(exc):
                    return  # a refusal (NOPERM): the heartbeat and the fetcher stop consuming and say why
                outage.failed(exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._stop.wait()

    async def sweep(self) -> int:
        """Recover the items of every consumer whose heartbeat expired; returns how many moved."""
        token = f"{self._id}-{os.urandom(4).hex()}"
        if not await self._scripts.lock(token, max(100, int(self.interval * 1000))):
            return 0
        moved = 0
        for consumer in await self._dead_candidates():
            moved += await self._recover(consumer)
        self.recovered += moved
        return moved

    async def _dead_candidates(self) -> list[str]:
        """Consumers other than this one whose heartbeat key is missing."""
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
        """Owners of processing hashes and lists found by the next few SCAN calls (the cursor carries over)."""
        found: set[str] = set()
        part = self._parts[self._scan_shard]
        for _ in range(SCAN_CALLS):
            cursor, keys = await part.client.scan(
                cursor=self._scan_cursor, match=part.keys.claims_pattern, count=1000
            )
            self._scan_cursor = int(cursor)
            found.update(part.keys.consumer_of(key) for key in keys)
            if self._scan_cursor == 0:
                self._scan_shard = (self._scan_shard + 1) % len(self._parts)
                break
        return found

    async def _recover(self, consumer: str) -> int:
        total = 0
        for part in [*self._parts[1:], self._parts[0]]:
            while True:
                moved = await part.scripts.recover(consumer, RECOVER_BATCH)
                if moved < 0:
                    # Its heartbeat on this shard has not expired yet: keep it registered, try next sweep.
                    if part is not self._parts[0]:
                        return total
                    break
                total += moved
                if moved < RECOVER_BATCH:
                    break
        if total:
            log.warning("recovered %d item(s) of consumer %s (heartbeat expired)", total, consumer)
        return total
