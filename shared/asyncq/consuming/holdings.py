"""The items this process handed out and has not yet marked done, and their batched acknowledgements.

Items are keyed by id: two copies of one item (twins an older version could leave) are one item here, and
the second copy (which FETCH put in the processing list, the hash holding the first) is acknowledged at
once, so it is counted once for ``join()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from asyncq.consuming.stats import ConsumerStats
from asyncq.core.batcher import Batcher
from asyncq.core.envelope import Message
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)

_TOO_MANY = "task_done() called more times than there were items got"


class Acks:
    """The acknowledgements not yet sent, batched per shard (each shard's ACK script runs in its slot), as
    (handle, put with an idempotency key)."""

    def __init__(self, scripts: Sequence[Scripts], consumer_id: str) -> None:
        self._batchers = [Batcher("ack", self._sender(s, consumer_id), retry_all=True, max_batch=1000) for s in scripts]

    @staticmethod
    def _sender(scripts: Scripts, consumer_id: str) -> Any:
        async def send(acks: list[tuple[bytes, bool]], seq: int) -> int:
            keyed = any(key for _, key in acks)
            await scripts.ack(consumer_id, [handle for handle, _ in acks], keyed=keyed)
            return len(acks)

        return send

    def submit(self, message: Message) -> None:
        self._batchers[message.shard].submit((message.handle, message.key is not None), wait=False)

    def pending(self, shard: int) -> list[bytes]:
        return [handle for handle, _ in self._batchers[shard].pending()]

    async def flush(self) -> None:
        for batcher in self._batchers:
            await batcher.flush()

    def __len__(self) -> int:
        return sum(len(batcher) for batcher in self._batchers)


class Holdings:
    """What ``get()`` handed out, by id and by the task that got it; acknowledgements sent in batches."""

    def __init__(self, scripts: Sequence[Scripts], consumer_id: str, stats: ConsumerStats) -> None:
        self._stats = stats
        self.in_progress: dict[str, Message] = {}
        self._by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], deque[Message]] = weakref.WeakKeyDictionary()
        self.acks = Acks(scripts, consumer_id)

    def __len__(self) -> int:
        return len(self.in_progress)

    def handles(self, shard: int = 0) -> Iterator[bytes]:
        """Every item this process still owns in shard ``shard``'s processing hash or list (their
        ``Message.handle``): in progress, or acknowledged and not yet sent."""
        yield from (m.handle for m in self.in_progress.values() if m.shard == shard)
        yield from self.acks.pending(shard)

    def held(self, shard: int) -> bool:
        """Whether this process owns anything in shard ``shard``'s processing hash or list."""
        return any(True for _ in self.handles(shard))

    def take(self, message: Message) -> bool:
        """Record ``message`` as handed out to the calling task; False (and acknowledged) for a second copy
        of an item already in progress here: it is done when that one is."""
        if message.id in self.in_progress:
            log.warning("dropped a second copy of item %s, already in progress here", message.id)
            self.acks.submit(message)
            return False
        self.in_progress[message.id] = message
        task = asyncio.current_task()
        if task is not None:
            mine = self._by_task.get(task)
            if mine is None:
                mine = self._by_task[task] = deque()
            while mine and mine[0].id not in self.in_progress:
                mine.popleft()  # marked through ack(message) rather than task_done(): forget it here
            mine.append(message)
        self._stats.latency.record(max(0.0, time.time() - message.enqueued_at))
        return True

    def oldest_unmarked(self) -> Message:
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
        raise ValueError(_TOO_MANY)

    def done(self, message: Message) -> None:
        """Mark ``message`` done: its acknowledgement goes out with the next batch."""
        if self.in_progress.get(message.id) is not message:
            raise ValueError(_TOO_MANY)
        del self.in_progress[message.id]
        self._stats.processed += 1
        self.acks.submit(message)

    def release(self, message: Message) -> None:
        """Forget ``message`` (it is being retried or dead-lettered instead)."""
        if self.in_progress.get(message.id) is message:
            del self.in_progress[message.id]
