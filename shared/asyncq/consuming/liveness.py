"""The heartbeat: each consuming process keeps a key with a TTL, its lease on the items it holds.

It beats in a task of its own, which nothing else shares (the recovery sweep has its own), so a slow Redis
call elsewhere never delays it. It registers the consumer before anything is claimed, renews the ``Lease``
at every beat, revokes it when a beat finds the key had expired, and says why that happened: Redis was
unreachable, or this process's event loop was blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.consuming.lease import Lease
from asyncq.core.backoff import Outage
from asyncq.core.failures import is_transient
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


class Liveness:
    """Heartbeat of consumer ``consumer_id`` every ``interval`` seconds; its TTL is three intervals."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        consumer_id: str,
        interval: float,
        info: Callable[[], dict[str, Any]],
        shards: Sequence[Scripts] = (),
        present: Callable[[], list[int]] = list,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._id = consumer_id
        self.interval = interval
        self.ttl_ms = int(interval * 3000)
        self.lease = Lease(self.ttl_ms / 1000, margin=interval / 2)
        self._info = info
        # A sharded queue: the scripts of every shard, and which ones (besides the home shard, 0) to beat.
        self._shards = shards
        self._present = present
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_ok: float | None = None  # monotonic send time of the last heartbeat Redis accepted
        self._failed_since_ok = False

    def start(self) -> None:
        """Register (retrying through outages) and beat until closed."""
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

    async def _run(self) -> None:
        outage = Outage("heartbeat", log)
        first = True
        while not self._stop.is_set():
            try:
                await self._beat(first=first)
                first = False
                outage.recovered()
            except (RedisError, OSError) as exc:
                if isinstance(exc, RedisError) and not is_transient(exc):
                    self.lease.fail(exc)  # a refusal (NOPERM): consuming cannot go on
                    return
                outage.failed(exc)
                if first:  # nothing is claimed before the first heartbeat: try again soon
                    await self._pause(min(self.interval, 1.0))
                    continue
            await self._pause(self.interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _beat(self, *, first: bool) -> None:
        value = json.dumps(self._info(), separators=(",", ":"))
        sent_at = time.monotonic()
        try:
            alive = await self._scripts.heartbeat(self._id, value, self.ttl_ms, first=first)
            for shard in self._present():
                if shard and not await self._shards[shard].heartbeat(self._id, "{}", self.ttl_ms, first=False):
                    # Expired while we held items there, unless we left that shard meanwhile.
                    alive = alive and shard not in self._present()
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
        elif gap * 1000 >= self.ttl_ms:
            cause = (
                f"the event loop was blocked for about {gap:.1f} s (a handler that does not await? "
                "run blocking code in a plain def handler, which runs in a thread)"
            )
        else:  # beats were on time: the server lost the key
            cause = "the server lost it (a failover to a replica that had not received it yet, or eviction)"
        log.warning(
            "consumer %s: heartbeat had expired because %s; items it held may have been redelivered",
            self._id,
            cause,
        )
