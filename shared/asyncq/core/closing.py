"""Shutting a queue down across processes, with Python 3.13's ``Queue.shutdown()`` meaning.

``shutdown()`` sets the ``shutdown`` key of every shard (``asyncq.core.keys``): PUT refuses every batch from
then on, in every process, so ``put()`` raises ``QueueShutDown``. Getters go on while items wait or are
scheduled, and raise ``QueueShutDown`` once there are none. With ``immediate``, the waiting and scheduled
items are dropped (done for ``join()``) and getters raise at once. The key stays until ``asyncq reset NAME``
removes it: the name can then be used again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from enum import Enum

from asyncq.core.shards import Shard

if sys.version_info >= (3, 13):
    QueueShutDown = asyncio.QueueShutDown
else:

    class QueueShutDown(Exception):  # asyncio's name
        """``put()`` on a queue that was shut down, or ``get()`` on one shut down and empty (asyncio's
        ``QueueShutDown`` on Python 3.13 and later)."""


class Status(Enum):
    OPEN = "open"
    DRAINING = "draining"  # shut down, items still waiting or scheduled
    DRAINED = "drained"  # shut down, nothing waiting or scheduled: getters raise
    IMMEDIATE = "immediate"  # shut down with immediate=True: getters raise at once


class ShutdownWatch:
    """What one process knows of its queue's shutdown. The ``shutdown`` notification (and every (re)subscribe)
    makes it look at once; otherwise it looks at most every ``every`` seconds while it sees the queue open
    (one GET, and only when a claim came back empty): the safety net for a lost notification."""

    def __init__(self, parts: list[Shard], *, every: float = 5.0) -> None:
        self._parts = parts
        self._every = every
        self._mode: str | None = None
        self._looked = -every
        self.heard = False  # a 'shutdown' notification came and was not looked into yet

    @property
    def known(self) -> str | None:
        """``drain`` or ``immediate`` once this process saw the queue shut down, else None."""
        return self._mode

    def seen(self, mode: str) -> None:
        if self._mode != "immediate":
            self._mode = mode

    def stale(self) -> None:
        """A 'shutdown' notification came: look again at the next chance."""
        self._looked = -self._every
        self.heard = True

    async def status(self) -> Status:
        self.heard = False
        if self._mode != "immediate" and time.monotonic() - self._looked >= self._every:
            self._looked = time.monotonic()
            home = self._parts[0]
            mode = await home.client.get(home.keys.shutdown)
            if mode is not None:
                self.seen(mode.decode() if isinstance(mode, bytes) else str(mode))
        if self._mode is None:
            return Status.OPEN
        if self._mode == "immediate":
            return Status.IMMEDIATE
        for part in self._parts:
            pipe = part.client.pipeline(transaction=False)
            kind = part.scripts.kind
            pipe.zcard(part.keys.ranked) if kind == "priority" else pipe.llen(part.keys.queue)
            pipe.zcard(part.keys.delayed)
            if any(int(n) for n in await pipe.execute()):
                return Status.DRAINING
        return Status.DRAINED

    async def shutdown(self, *, immediate: bool) -> int:
        """Shut every shard down (the home shard last: processes look there); returns how many were dropped."""
        dropped = 0
        for part in [*self._parts[1:], self._parts[0]]:
            dropped += await part.scripts.shutdown(immediate=immediate)
        self.seen("immediate" if immediate else "drain")
        return dropped
