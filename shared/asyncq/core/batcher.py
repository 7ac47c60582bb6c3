"""Group commit: callers hand over items one at a time; one background task sends whatever has gathered.

While one round trip is in flight the next batch gathers, so a lone caller pays one round trip and a busy
process pays one round trip per batch. Used for puts (callers await their future) and acknowledgements
(fire and forget; ``flush()`` waits for them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from asyncq.core.backoff import Outage
from asyncq.core.failures import is_transient

T = TypeVar("T")
log = logging.getLogger(__name__)


class Batcher(Generic[T]):
    """Sends items in batches with ``send(batch, seq) -> how many were taken from the front``.

    Taking fewer than offered means "no room now": the batcher awaits ``wait_room()`` and offers the rest
    again. A batch that failed is sent again exactly as it was, with the same ``seq``, until Redis answers:
    ``send`` can then recognise a batch whose reply was lost and not apply it twice. Failures for which
    ``transient(exc)`` holds are retried with backoff; other Redis errors fail the batch's futures (or, with
    ``retry_all``, are retried too: for acknowledgements, which must not be dropped).
    """

    def __init__(
        self,
        what: str,
        send: Callable[[list[T], int], Awaitable[int]],
        *,
        max_batch: int = 1000,
        wait_room: Callable[[], Awaitable[None]] | None = None,
        retry_all: bool = False,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self._what = what
        self._send = send
        self._max_batch = max_batch
        self._wait_room = wait_room
        self._retry_all = retry_all
        self._transient = transient
        self._items: deque[tuple[T, asyncio.Future[None] | None]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._pinned = 0  # size of the batch at the front that failed and must be resent as it was
        self.outage = Outage(what, log)

    def __len__(self) -> int:
        return len(self._items)

    def pending(self) -> list[T]:
        """Items submitted and not yet sent (a batch in flight counts until its reply)."""
        return [item for item, _ in self._items]

    def submit(self, item: T, *, wait: bool = True) -> asyncio.Future[None] | None:
        """Queue ``item``; returns a future that resolves once it is sent (``None`` with ``wait=False``)."""
        future = asyncio.get_running_loop().create_future() if wait else None
        self._items.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"asyncq-{self._what}")
        return future

    async def flush(self) -> None:
        """Wait until everything submitted so far has been sent (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def fail_all(self, exc: BaseException) -> int:
        """Give up on everything not yet sent: waiting callers get ``exc``. Returns how many were dropped."""
        dropped = len(self._items)
        self._pinned = 0
        while self._items:
            _, future = self._items.popleft()
            if future is not None and not future.done():
                future.set_exception(exc)
        return dropped

    def _next_batch(self) -> int:
        """The size of the batch to send now, numbering a new one unless a failed one must be resent."""
        if self._pinned:
            return min(self._pinned, len(self._items))
        while self._items and self._items[0][1] is not None and self._items[0][1].cancelled():
            self._items.popleft()  # a caller that gave up before its item was ever sent
        self._seq += 1
        return min(self._max_batch, len(self._items))

    async def _run(self) -> None:
        while self._items:
            size = self._next_batch()
            if not size:
                return
            batch = [self._items[i][0] for i in range(size)]
            try:
                taken = await self._send(batch, self._seq)
            except (RedisError, OSError) as exc:
                if isinstance(exc, RedisError) and not (self._retry_all or self._transient(exc)):
                    self._pinned = 0
                    self._fail(size, exc)
                    continue
                # The batch may have been applied with only its reply lost: resend exactly it, same seq.
                self._pinned = size
                await asyncio.sleep(self.outage.failed(exc))
                continue
            self._pinned = 0
            self.outage.recovered()
            for _ in range(min(taken, len(self._items))):
                _, future = self._items.popleft()
                if future is not None and not future.done():
                    future.set_result(None)
            if taken < size and self._wait_room is not None:
                await self._wait_room()

    def _fail(self, size: int, exc: RedisError) -> None:
        # Not logged: every caller waiting on the batch gets ``exc`` and says it in its own words.
        for _ in range(min(size, len(self._items))):
            _, future = self._items.popleft()
            if future is not None and not future.done():
                future.set_exception(exc)
