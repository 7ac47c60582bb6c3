"""One fetcher per consuming process: it owns the buffer of claimed items, this process's processing hash and
list and their reconciliation, and hands items to ``get()`` callers.

``get()`` only waits on a local future (cancelling it is safe: nothing is in flight for it); the fetcher's
task alone claims (through the ``Claimer``). Items are claimed and handed out only while the ``Lease``
holds, so a consumer cut off from Redis stops handing out what recovery may already have given to others,
and after the heal reconciles before it hands out or claims anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from redis.exceptions import RedisError, ResponseError

from asyncq.consuming.burial import bury
from asyncq.consuming.claimer import Claimed, Claiming
from asyncq.consuming.holdings import Holdings
from asyncq.consuming.lease import Lease
from asyncq.consuming.prefetch import Prefetch
from asyncq.consuming.stats import ConsumerStats
from asyncq.core.backoff import Outage
from asyncq.core.closing import QueueShutDown, ShutdownWatch, Status
from asyncq.core.envelope import BadEnvelope, Message, decode
from asyncq.core.errors import QueueClosed
from asyncq.core.failures import is_out_of_memory, is_transient
from asyncq.core.retries import RetryPolicy
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


class Fetcher:
    """Keeps ``buffer`` filled for the waiting getters plus ``prefetch`` more (``asyncq.consuming.prefetch``),
    at most ``batch_size`` per trip."""

    def __init__(
        self,
        *,
        claimer: Claiming,
        scripts: Sequence[Scripts],
        consumer_id: str,
        holdings: Holdings,
        lease: Lease,
        retry: RetryPolicy,
        stats: ConsumerStats,
        prefetch: Prefetch,
        batch_size: int,
        shutdown: ShutdownWatch | None = None,
    ) -> None:
        self._claimer = claimer
        self._scripts = scripts
        self._consumer_id = consumer_id
        self._holdings = holdings
        self._lease = lease
        self._retry = retry
        self._stats = stats
        self.prefetch = prefetch
        self._batch_size = batch_size
        self.buffer: deque[Message] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._bad: deque[tuple[Message | tuple[int, bytes, bytes], str, bool]] = deque()  # to bury, reason, counted
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._closed = False
        self._reconcile_needed = False
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._shutdown = shutdown
        self._ended: Status | None = None  # DRAINED or IMMEDIATE: getters raise QueueShutDown

    # -- the getters' side -------------------------------------------------------------------------------

    async def get(self) -> Message:
        """The next item; waits for one. Raises ``QueueClosed`` once consuming stopped."""
        while True:
            while not self.buffer:
                self._check_open()
                getter = asyncio.get_running_loop().create_future()
                self._getters.append(getter)
                self._wake.set()
                try:
                    await getter
                except asyncio.CancelledError:
                    getter.cancel()
                    with contextlib.suppress(ValueError):
                        self._getters.remove(getter)
                    if self.buffer and not getter.cancelled():
                        self._wake_next()
                    raise
            self._check_open()
            if self._lease.valid():
                break
            self._wake.set()  # the fetcher reconciles after a lapse
            await self._lease.changed(self._claimer.block_timeout)
        message = self.buffer.popleft()
        if self.prefetch.value or self._getters:
            self._wake.set()  # refill: the buffer's count no longer hides the getters still waiting
        return message

    def _check_open(self) -> None:
        failure = self._failure or self._lease.failure
        if failure is not None:
            raise QueueClosed(f"consuming stopped: {failure!r}") from failure
        if self._closed:
            raise QueueClosed("the queue is closed for getting")
        if self._ended is Status.IMMEDIATE or (self._ended is Status.DRAINED and not self.buffer):
            raise QueueShutDown("the queue was shut down" + ("" if self._ended is Status.DRAINED else " (immediate)"))

    def take_buffered(self) -> Message | None:
        """An item already claimed into the buffer, if one is and the lease holds (``get_nowait``)."""
        self._check_open()
        if not self.buffer or not self._lease.valid():
            return None
        message = self.buffer.popleft()
        self._wake.set()  # refill the prefetch
        return message

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    def _want(self) -> int:
        ahead = self.prefetch.value
        if not self._getters and len(self.buffer) > ahead // 2:
            return 0  # refill from half empty, in one claim, rather than an item at a time as gets take them
        return min(self._batch_size, len(self._getters) + ahead - len(self.buffer))

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="asyncq-fetcher")
            self._task.add_done_callback(self._finished)

    @property
    def failure(self) -> BaseException | None:
        """Why consuming stopped by itself (Redis refused a step it needs, e.g. NOPERM), if it did."""
        return self._failure or self._lease.failure

    def poke(self) -> None:
        """Run a pass now (a notification the fetcher must act on came)."""
        self._wake.set()

    def due_in(self, seconds: float, shard: int = 0) -> None:
        if self._ended is Status.DRAINED:
            self._ended = None  # a retry of ours is scheduled: the queue is not empty after all
        self._claimer.due_in(seconds, shard)

    async def stop(self) -> list[Message]:
        """Stop claiming (bounded by the block timeout) and refuse further gets; returns the buffered items."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._wake_all()
        if self._task is not None and not self._task.done():
            await self._claimer.unblock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._claimer.block_timeout + 3.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                log.warning("fetcher did not stop in time; recovery will return what it claimed")
                self._task.cancel()
        buffered = list(self.buffer)
        self.buffer.clear()
        return buffered

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
        self._wake_all()

    # -- the Redis side ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        outage = Outage("fetch", log)
        while not self._stop.is_set():
            try:
                await self._pass()
                outage.recovered()
            except (RedisError, OSError) as exc:
                self._claimer.connection_lost()
                # A claim whose reply was lost may have moved items to our processing hash or list that nobody holds.
                self._reconcile_needed = True
                if isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc):
                    await self._claimer.report_wrong_type()
                elif isinstance(exc, RedisError) and not (is_transient(exc) or is_out_of_memory(exc)):
                    raise  # a refusal that waiting does not cure (NOPERM, a script error): stop consuming
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(outage.failed(exc)):
                        await self._stop.wait()

    async def _pass(self) -> None:
        """One step: reconcile if needed, bury what cannot be delivered, claim what the getters want."""
        if self._lease.failure is not None:
            self._wake_all()  # the heartbeat was refused for good: getters raise
            await self._stop.wait()
            return
        if self._reconcile_needed or self._lease.revoked:
            await self._reconcile()
        while self._bad:
            await self._bury(*self._bad[0])
            self._bad.popleft()
        await self._claimer.tidy(self._holds)
        if self._shutdown is not None and self._shutdown.heard:
            await self._look_at_shutdown(self._shutdown)  # even with nothing to claim: drop what is buffered
        if not self._lease.valid():
            # Claim nothing we could not prove we own: the heartbeat renews the lease first.
            await self._lease.changed(self._claimer.block_timeout)
            return
        if self._want() <= 0:
            self._wake.clear()
            if self._want() <= 0 and not self._stop.is_set():
                await self._wake.wait()
            return
        claimed = await self._claimer.claim(self._want(), self._stop)
        self._claimer.claimed()
        # Starved: getters waited on this claim, or nearly did (the buffer it refilled was almost drained).
        starved = bool(self._getters) or len(self.buffer) < self.prefetch.value // 4
        self.prefetch.claimed(self._claimer.backlog, starved=starved)
        self._deliver(claimed)
        if not claimed and self._shutdown is not None:
            await self._look_at_shutdown(self._shutdown)

    async def _look_at_shutdown(self, watch: ShutdownWatch) -> None:
        """After an empty claim: once the queue is shut down and empty, getters raise ``QueueShutDown``; shut
        down with ``immediate``, at once, and what this process claimed and did not hand out is dropped too."""
        status = await watch.status()
        if status is Status.IMMEDIATE and self.buffer:
            # Given back, then dropped by SHUTDOWN like everything else that waits: counted as dropped.
            dropped = len(self.buffer)
            self.buffer.clear()
            await self._claimer.release(lambda shard: list(self._holdings.handles(shard)))
            for scripts in self._scripts:
                await scripts.shutdown(immediate=True)
            log.warning("dropped %d claimed item(s): the queue was shut down (immediate)", dropped)
        self._ended = status if status in (Status.DRAINED, Status.IMMEDIATE) else None
        if self._ended is not None:
            self._wake_all()

    async def _reconcile(self) -> None:
        """Make our processing hash and list and what this process holds agree (the fetcher alone claims, so
        this cannot race a claim). Buffered items that recovery gave back are dropped; held items that nobody
        here holds (a claim whose reply was lost) go back to the head of the line."""
        generation = self._lease.generation
        listed = await self._claimer.processing()
        before = len(self.buffer)
        self.buffer = deque(m for m in self.buffer if (m.shard, m.handle) in listed)
        if dropped := before - len(self.buffer):
            log.warning("dropped %d prefetched item(s) that recovery gave back to the queue", dropped)

        def keep(shard: int) -> list[bytes]:
            return [*(m.handle for m in self.buffer if m.shard == shard), *self._holdings.handles(shard)]

        if given := await self._claimer.release(keep):
            log.warning("gave back %d item(s) claimed by a pop whose reply was lost", given)
        self._reconcile_needed = False
        self._lease.restore(generation)

    async def _bury(self, what: Message | tuple[int, bytes, bytes], reason: str, counted: bool) -> None:
        """Dead-letter an item delivered too often (a Message) or a claimed value that is not an envelope."""
        if isinstance(what, Message):
            shard, raw, handle, keyed = what.shard, what.raw, what.handle, what.key is not None
        else:
            shard, raw, ref = what
            handle, keyed = ref or b"=" + raw, False
        scripts = self._scripts[shard]
        await bury(
            scripts, self._consumer_id, self._stats, raw, reason, handle=handle, counted=counted, failed=False,
            item_id=what.id if isinstance(what, Message) else None, keyed=keyed,
        )  # fmt: skip

    def _holds(self, shard: int) -> bool:
        """Whether anything of shard ``shard`` is buffered, in progress or waiting for its acknowledgement."""
        return any(m.shard == shard for m in self.buffer) or self._holdings.held(shard)

    def _deliver(self, claimed: list[Claimed]) -> None:
        for shard, raw, ref in claimed:
            try:
                message = decode(raw, shard, ref)
            except BadEnvelope as exc:
                self._bad.append(((shard, raw, ref), str(exc), False))
                continue
            if self._retry.exhausted(message.attempts):
                reason = f"delivered {message.attempts} times without success (max_deliveries)"
                self._bad.append((message, reason, True))
                continue
            self.buffer.append(message)
            self._wake_next()
