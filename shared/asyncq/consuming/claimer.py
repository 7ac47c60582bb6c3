"""The Redis side of claiming: a FETCH script for a batch, else one bounded blocking pop on a connection of
its own, which ``CLIENT UNBLOCK`` ends at once on stop (never a cancel: see the redis-py pitfalls).

Every claimed item is in this consumer's processing hash (a FETCH) or list (a blocking pop) before it is
returned, so a crash at any point leaves it where recovery finds it. A claim is a list of (shard, envelope,
ref): ``ref`` is the item's id in the hash, or empty for the list (``Message.handle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.core.connection import blocking_client
from asyncq.core.envelope import listed_id
from asyncq.core.events import Events
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


Claimed = tuple[int, bytes, bytes]  # (shard, envelope, ref)


async def held_handles(client: aioredis.Redis, keys: Keys, consumer_id: str) -> list[bytes]:
    """The handles of what ``consumer_id``'s processing hash and list hold now (see ``Message.ref``: an item
    of the list is listed under both of the handles it may have)."""
    pipe = client.pipeline(transaction=False)
    pipe.hkeys(keys.held(consumer_id))
    pipe.lrange(keys.processing(consumer_id), 0, -1)
    ids, listed = await pipe.execute()
    handles = [*ids, *(b"=" + raw for raw in listed)]
    handles += [b"#" + item_id for raw in listed if (item_id := listed_id(raw))]
    return handles


class Claiming(Protocol):
    """What the fetcher needs of a claimer: ``Claimer`` (one shard) or ``ShardedClaimer``."""

    block_timeout: float
    backlog: int  # items the last claim left waiting in Redis (0 when unknown)

    async def claim(self, want: int, stopping: asyncio.Event) -> list[Claimed]: ...
    async def processing(self) -> set[tuple[int, bytes]]: ...
    async def release(self, keep: Callable[[int], list[bytes]]) -> int: ...
    async def tidy(self, held: Callable[[int], bool]) -> None: ...
    async def unblock(self) -> None: ...
    async def report_wrong_type(self) -> None: ...
    def connection_lost(self) -> None: ...
    def claimed(self) -> None: ...
    def due_in(self, seconds: float, shard: int = 0) -> None: ...
    def wake(self, shard: int = 0) -> None: ...


class Claimer:
    """Claims for consumer ``consumer_id``; a blocking pop waits at most ``block_timeout`` seconds."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        consumer_id: str,
        block_timeout: float,
        events: Events | None = None,
    ):
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._consumer_id = consumer_id
        self._processing = keys.processing(consumer_id)
        self.block_timeout = block_timeout
        self._blocking = blocking_client(client, block_timeout)
        self._blocked_id: int | None = None  # CLIENT ID of the blocking connection, to unblock it on stop
        self._blocked_until: float | None = None  # monotonic end of the blocking pop in progress
        self._retry_due: float | None = None  # monotonic time our earliest scheduled retry falls due
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._wrong_type_reported = False
        # The queue's notifications: a delayed put now the earliest ('due'), a shutdown; either ends the wait.
        self._events = events
        self._stale = False  # such a notification came during a FETCH: its reply may predate it

    shards = 1
    backlog = 0

    async def claim(self, want: int, stopping: asyncio.Event) -> list[Claimed]:
        """Up to ``want`` items: a non-blocking batch, else the one item of a bounded blocking pop.

        The popped item is handed out at once rather than after a second round trip for more: on a queue
        that was empty, that round trip is most of the item's latency, and the next pass claims the rest.
        """
        if self._events is not None:
            # Subscribed before the first FETCH, so no 'due' is missed; once only: a subscription refused
            # (an ACL without the channel) must not slow every claim. The listener resubscribes by itself.
            await self._events.ensure_listening()
            self._events = None
        self._stale = False
        fetched = await self._scripts.fetch(self._consumer_id, want)
        self.backlog = fetched.left
        if fetched.items:
            return [(0, raw, ref) for raw, ref in fetched.items]
        wait = self.block_timeout if fetched.next_due is None else fetched.next_due
        if self._blocked_id is None:
            self._blocked_id = int(await self._blocking.client_id())
        if stopping.is_set() or self._stale:
            return []
        # No await from here to the pop: a retry scheduled meanwhile either shortens this timeout or, once
        # _blocked_until is set, unblocks the pop (due_in).
        now = time.monotonic()
        if self._retry_due is not None and self._retry_due <= now:
            self._retry_due = None
        local = self._retry_due - now if self._retry_due is not None else self.block_timeout
        timeout = max(0.01, min(self.block_timeout, wait, local))
        self._blocked_until = time.monotonic() + timeout
        # Redis ends a blocking pop's timeout only in its cron (hz 10: up to 100 ms late); a wait that ends at
        # a due time is ended on time here instead, by unblocking it.
        timer = asyncio.get_running_loop().call_later(timeout, self.wake) if timeout < self.block_timeout else None
        try:
            raw = await self._blocking.blmove(
                self._keys.queue,
                self._processing,
                timeout,  # type: ignore[arg-type]  # Redis takes fractional seconds
                "RIGHT",
                "LEFT",
            )
        finally:
            self._blocked_until = None
            if timer is not None:
                timer.cancel()
        return [(0, raw, b"")] if isinstance(raw, bytes) else []

    def connection_lost(self) -> None:
        """After a failure the blocking connection may be a new one, with a new CLIENT ID."""
        self._blocked_id = None

    async def processing(self) -> set[tuple[int, bytes]]:
        """The handles of what our processing hash and list hold now."""
        return {(0, h) for h in await held_handles(self._client, self._keys, self._consumer_id)}

    async def release(self, keep: Callable[[int], list[bytes]]) -> int:
        """Give back everything in our processing hash and list but the handles ``keep(0)``; returns how many
        went back."""
        return await self._scripts.release(self._consumer_id, keep(0))

    async def tidy(self, held: Callable[[int], bool]) -> None:
        """Nothing to tidy with one shard (see the sharded claimer)."""

    async def unblock(self) -> None:
        """End a blocking pop in progress at once (it returns as if timed out) instead of cancelling it."""
        if self._blocked_id is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._client.client_unblock(self._blocked_id)

    def due_in(self, seconds: float, shard: int = 0) -> None:
        """A retry of ours falls due in ``seconds``: end a blocking pop that would outlast it."""
        due = time.monotonic() + seconds
        self._retry_due = due if self._retry_due is None else min(self._retry_due, due)
        if self._blocked_until is not None and time.monotonic() + seconds < self._blocked_until - 0.05:
            task = asyncio.create_task(self.unblock(), name="asyncq-unblock")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def wake(self, shard: int = 0) -> None:
        """A notification says the next due time changed (or the queue was shut down): FETCH again now."""
        self._stale = True
        if self._blocked_until is not None:
            task = asyncio.create_task(self.unblock(), name="asyncq-unblock")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def report_wrong_type(self) -> None:
        """Name, once per outage, a key of ours that another program filled with the wrong type."""
        if self._wrong_type_reported:
            return
        self._wrong_type_reported = True
        expected = {
            self._keys.queue: b"list",
            self._processing: b"list",
            self._keys.held(self._consumer_id): b"hash",
            self._keys.delayed: b"zset",
        }
        for key, kind in expected.items():
            with contextlib.suppress(RedisError, OSError):
                actual = await self._client.type(key)
                if actual not in (kind, b"none"):
                    log.error(
                        "key %s holds a %s, not a %s: another program wrote it; consuming waits until it "
                        "is fixed or deleted",
                        key,
                        actual.decode() if isinstance(actual, bytes) else actual,
                        kind.decode(),
                    )

    def claimed(self) -> None:
        """A claim succeeded: a wrong type reported before is reported again if it comes back."""
        self._wrong_type_reported = False

    async def close(self, *, remove: bool = True) -> None:
        await self._blocking.aclose(close_connection_pool=True)  # the pool is ours, made for this client
