"""The items this process handed out and has not yet marked done, and their batched acknowledgements.

Items are keyed by id: two copies of one item (twins an older version could leave) are one item here, and
the second copy is acknowledged at once, so it is counted once for ``join()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

from asyncq.consuming.stats import ConsumerStats
from asyncq.core.batcher import Batcher
from asyncq.core.envelope import Message
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)

_TOO_MANY = "task_done() called more times than there were items got"


class Holdings:
    """What ``get()`` handed out, by id and by the task that got it; acknowledgements sent in batches."""

    def __init__(self, scripts: Scripts, consumer_id: str, stats: ConsumerStats) -> None:
        self._scripts = scripts
        self._consumer_id = consumer_id
        self._stats = stats
        self.in_progress: dict[str, Message] = {}
        self._by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], deque[Message]] = weakref.WeakKeyDictionary()
        self.acks: Batcher[bytes] = Batcher("ack", self._send_acks, retry_all=True, max_batch=1000)

    def __len__(self) -> int:
        return len(self.in_progress)

    def raws(self) -> Iterator[bytes]:
        """Every envelope this process still owns in its processing list: in progress, or acknowledged and
        not yet sent."""
        yield from (m.raw for m in self.in_progress.values())
        yield from self.acks.pending()

    def take(self, message: Message) -> bool:
        """Record ``message`` as handed out to the calling task; False (and acknowledged) for a second copy
        of an item already in progress here: it is done when that one is."""
        if message.id in self.in_progress:
            log.warning("dropped a second copy of item %s, already in progress here", message.id)
            self.acks.submit(message.raw, wait=False)
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
        self.acks.submit(message.raw, wait=False)

    def release(self, message: Message) -> None:
        """Forget ``message`` (it is being retried or dead-lettered instead)."""
        if self.in_progress.get(message.id) is message:
            del self.in_progress[message.id]

    async def _send_acks(self, raws: list[bytes], seq: int) -> int:
        await self._scripts.ack(self._consumer_id, raws)
        return len(raws)
