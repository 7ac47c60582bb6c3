"""Claiming from every shard of a sharded queue, for one consuming process.

No blocking pop can wait on several slots, and one pop per shard would multiply the idle cost by the shard
count. So the claimer FETCHes only from the shards that may hold items: all of them at first, then those that
gave as many as asked, those whose ``ready`` notification came (a script that adds to an empty shard
publishes it), those whose retries fall due, and, as the safety net for a lost notification, one shard in
turn per block timeout. Each pass starts at the next of those shards, so a busy shard never starves the
others. An idle consumer thus costs one FETCH per block timeout, as an idle consumer of one shard does.

The consumer heartbeats only the home shard and the shards it holds items in (``Presence``): once a FETCH
from a shard gave it items it sets its heartbeat there (the sweep recovers a dead consumer's lists only once
its home heartbeat expired; the shard's own heartbeat keeps a revived one's items from being taken); once it
has held nothing from a shard for an interval it gives that list back (a lost reply may have left items in
it) and drops that heartbeat. An empty FETCH leaves nothing to give back, so the idle poll costs one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from asyncq.consuming.claimer import Claimed, held_handles
from asyncq.core.shards import Shard

log = logging.getLogger(__name__)


class Presence:
    """The shards whose processing hash and list may hold this consumer's items (``active``, with when each was last
    used) and those among them where it keeps a heartbeat (``beating``); the home shard is always in both."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self.active: dict[int, float] = {0: time.monotonic()}
        self.beating: set[int] = {0}

    def used(self, shard: int) -> None:
        self.active[shard] = time.monotonic()


class ShardedClaimer:
    """Claims for consumer ``consumer_id`` from ``parts``; an idle wait lasts at most ``block_timeout``."""

    def __init__(
        self, *, parts: list[Shard], consumer_id: str, block_timeout: float, presence: Presence, interval: float
    ) -> None:
        self._parts = parts
        self._id = consumer_id
        self.block_timeout = block_timeout
        self.presence = presence
        self._interval = interval
        self._maybe: set[int] = set(range(len(parts)))  # shards that may hold items
        self._start = 0  # where the next pass begins
        self._poll = 0  # the shard the next idle timeout looks at
        self._due: dict[int, float] = {}  # shard -> monotonic time its earliest retry falls due
        self._wake = asyncio.Event()
        self._readies = [0] * len(parts)  # 'ready' and 'due' notifications seen per shard
        self._listening = False
        self._tidied = time.monotonic()
        self._wrong_type_reported = False
        self.backlog = 0
        for part in parts:
            part.events.on_ready = self._ready_callback(part.index)

    def _ready_callback(self, shard: int) -> Callable[[], None]:
        def ready() -> None:
            self._readies[shard] += 1
            self._maybe.add(shard)
            self._wake.set()

        return ready

    async def claim(self, want: int, stopping: asyncio.Event) -> list[Claimed]:
        """Up to ``want`` items from the shards that may hold some; else wait for one to (bounded)."""
        if not self._listening:
            for part in self._parts:  # subscribed before the first look: nothing published after it is missed
                await part.events.ensure_listening()
            self._listening = True
        self._add_due()
        got: list[Claimed] = []
        self.backlog = 0
        count = len(self._parts)
        order = [(self._start + k) % count for k in range(count)]
        self._start = (self._start + 1) % count
        for shard in order:
            left = want - len(got)
            if left <= 0:
                break
            if shard not in self._maybe:
                continue
            self._wake.clear()
            listed = shard in self.presence.active
            self.presence.used(shard)  # before the call: a lost reply may leave items there
            readies = self._readies[shard]
            fetched = await self._parts[shard].scripts.fetch(self._id, left)
            self.backlog += fetched.left
            if not fetched.items and not listed:
                del self.presence.active[shard]  # the reply came and nothing moved
            elif shard not in self.presence.beating:
                await self._beat_first(shard)
            if len(fetched.items) < left and self._readies[shard] == readies:
                # Empty now: its next 'ready' brings it back (one that came during the call may announce
                # items pushed after the FETCH ran, so the shard stays marked then).
                self._maybe.discard(shard)
            if fetched.next_due is not None:
                self._due[shard] = time.monotonic() + fetched.next_due
            if fetched.items:
                self.presence.used(shard)
                got.extend((shard, raw, ref) for raw, ref in fetched.items)
        if got or self._maybe or stopping.is_set():
            return got
        await self._idle(stopping)
        return []

    async def _idle(self, stopping: asyncio.Event) -> None:
        # No await since claim() saw nothing to look at: a wake set before now has been acted on.
        self._wake.clear()
        now = time.monotonic()
        timeout = min([self.block_timeout, *(due - now for due in self._due.values())])
        try:
            async with asyncio.timeout(max(0.01, timeout)):
                await self._wake.wait()
        except TimeoutError:
            if not self._due_now():
                self._maybe.add(self._poll)  # the safety net: one shard in turn
                self._poll = (self._poll + 1) % len(self._parts)

    def _due_now(self) -> bool:
        now = time.monotonic()
        return any(due <= now for due in self._due.values())

    def _add_due(self) -> None:
        now = time.monotonic()
        for shard, due in list(self._due.items()):
            if due <= now:
                del self._due[shard]
                self._maybe.add(shard)

    async def _beat_first(self, shard: int) -> None:
        await self._parts[shard].scripts.heartbeat(self._id, "{}", self.presence.ttl_ms, first=True)
        self.presence.beating.add(shard)

    async def tidy(self, held: Callable[[int], bool]) -> None:
        """Once an interval: leave the shards this consumer has held nothing from for an interval."""
        now = time.monotonic()
        if now - self._tidied < self._interval:
            return
        self._tidied = now
        for shard, used in list(self.presence.active.items()):
            if shard == 0 or now - used < self._interval or held(shard):
                continue
            part = self._parts[shard]
            if given := await part.scripts.release(self._id, []):
                log.warning("gave back %d item(s) a lost reply had left in shard %d", given, shard)
            del self.presence.active[shard]
            if shard not in self.presence.beating:
                continue
            self.presence.beating.discard(shard)  # before the delete: a heartbeat starting now skips it
            pipe = part.client.pipeline(transaction=True)
            pipe.delete(part.keys.heartbeat(self._id))
            pipe.srem(part.keys.consumers, self._id)
            await pipe.execute()

    async def processing(self) -> set[tuple[int, bytes]]:
        """The handles of what our processing hashes and lists hold now, on the shards we are present on."""
        listed: set[tuple[int, bytes]] = set()
        for shard in list(self.presence.active):
            part = self._parts[shard]
            listed.update((shard, h) for h in await held_handles(part.client, part.keys, self._id))
        return listed

    async def release(self, keep: Callable[[int], list[bytes]]) -> int:
        """Give back everything in our processing hashes and lists but the handles ``keep(shard)``; returns
        how many went back."""
        given = 0
        for shard in list(self.presence.active):
            given += await self._parts[shard].scripts.release(self._id, keep(shard))
        return given

    def due_in(self, seconds: float, shard: int = 0) -> None:
        due = time.monotonic() + seconds
        self._due[shard] = min(self._due.get(shard, due), due)
        self._wake.set()  # re-plan the wait

    def wake(self, shard: int = 0) -> None:
        """A notification says shard ``shard``'s next due time changed (or the queue was shut down)."""
        self._readies[shard] += 1  # counted like a 'ready': a FETCH already on its way may predate it
        self._maybe.add(shard)
        self._wake.set()

    async def unblock(self) -> None:
        self._wake.set()

    def connection_lost(self) -> None:
        self._maybe.update(range(len(self._parts)))  # after an outage, look everywhere again

    async def report_wrong_type(self) -> None:
        """Name, once per outage, a shard's queue key that another program filled with the wrong type."""
        if self._wrong_type_reported:
            return
        self._wrong_type_reported = True
        for part in self._parts:
            with contextlib.suppress(RedisError, OSError):
                kind = await part.client.type(part.keys.queue)
                if kind not in (b"list", b"none"):
                    log.error("key %s holds a %r, not a list: another program wrote it", part.keys.queue, kind)

    def claimed(self) -> None:
        self._wrong_type_reported = False

    async def close(self, *, remove: bool = True) -> None:
        """Stop listening; with ``remove`` (a clean leave, lists given back), drop our other shards' heartbeats."""
        for part in self._parts:
            part.events.on_ready = None
        if not remove:
            return
        for shard in [s for s in self.presence.beating if s]:
            part = self._parts[shard]
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    pipe = part.client.pipeline(transaction=True)
                    pipe.delete(part.keys.heartbeat(self._id))
                    pipe.srem(part.keys.consumers, self._id)
                    await pipe.execute()
