"""The queue's notification channel: ``done`` (nothing unfinished), ``space`` (room under maxsize), ``ready``
(items arrived in an empty shard, on a sharded or priority queue), ``due`` (a delayed put is now the earliest
scheduled item) and ``shutdown``.

One subscription per RedisQueue, opened on first need. Waiters always re-check the state in Redis after
subscribing and at a bounded interval, so a notification lost in an outage costs a second, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.core.backoff import Outage
from asyncq.core.failures import is_transient

log = logging.getLogger(__name__)


class Events:
    """Turns messages on ``channel`` into asyncio events."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self.done = asyncio.Event()
        self.space = asyncio.Event()
        self.ready = asyncio.Event()
        self.on_ready: Callable[[], None] | None = None  # called with each ``ready`` (the sharded claimer's wake)
        self.on_wake: Callable[[str], None] | None = None  # called with ``due`` and ``shutdown`` (the claimers')
        self._subscribed = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def ensure_listening(self, timeout: float = 5.0) -> None:
        """Start listening if needed and wait (bounded) until the subscription is in place."""
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self._listen(), name="asyncq-events")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._subscribed.wait()

    async def until_done(self, unfinished: Callable[[], Awaitable[int]]) -> None:
        """Wait until ``unfinished()`` is 0: re-read after each ``done`` and at least every second (a lost
        notification costs a second, never a hang), and through outages, with backoff."""
        await self.ensure_listening()
        outage = Outage("join", log)
        while True:
            self.done.clear()
            try:
                left = await unfinished()
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
                    await self.done.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, RedisError, OSError):
                async with asyncio.timeout(3.0):
                    await self._task
            if not self._task.done():
                self._task.cancel()

    async def _listen(self) -> None:
        outage = Outage("notifications", log)
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.ssubscribe(self._channel)
                self._subscribed.set()
                self._ready()  # what arrived while we were not listening: look once
                if self.on_wake is not None:
                    self.on_wake("shutdown")  # a due time or a shutdown may have been missed: look again
                outage.recovered()
                while not self._stop.is_set():
                    message = await pubsub.get_message(timeout=0.25)  # bounds how long close() waits
                    if message is not None:
                        self._dispatch(message.get("data"))
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                # Wake every waiter: they re-check the state themselves once Redis is back.
                self.done.set()
                self.space.set()
                self._ready()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(outage.failed(exc)):
                        await self._stop.wait()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, data: object) -> None:
        if data == b"done":
            self.done.set()
        elif data == b"space":
            self.space.set()
        elif data == b"ready":
            self._ready()
        elif data in (b"due", b"shutdown") and self.on_wake is not None:
            self.on_wake("due" if data == b"due" else "shutdown")

    def _ready(self) -> None:
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready()
