"""One fetcher per consuming process: claims items in batches into this process's processing list and hands
them to ``get()`` callers from a local buffer.

Every claimed item is in the processing list before it is in the buffer, so a crash at any point leaves it
where recovery finds it. ``get()`` only waits on a local future (cancelling it is safe: nothing is in flight
for it); the fetcher alone talks to Redis, on one dedicated connection for the blocking pop, which always
carries a server-side timeout so the loop re-checks its stop event each pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from asyncq.consuming.liveness import Lease
from asyncq.core.backoff import Outage
from asyncq.core.connection import is_out_of_memory, is_transient
from asyncq.core.envelope import BadEnvelope, Message, decode
from asyncq.core.errors import QueueClosed
from asyncq.core.keys import Keys
from asyncq.core.retries import RetryPolicy
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)

BadHandler = Callable[[bytes, str, bool], Awaitable[None]]


class Fetcher:
    """Keeps ``buffer`` filled for the waiting getters plus ``prefetch`` more, at most ``batch_size`` per trip."""

    def __init__(
        self,
        *,
        scripts: Scripts,
        blocking: aioredis.Redis,
        keys: Keys,
        consumer_id: str,
        prefetch: int,
        batch_size: int,
        block_timeout: float,
        retry: RetryPolicy,
        lease: Lease,
        on_bad: BadHandler,
        reconcile: Callable[[], Awaitable[None]],
    ) -> None:
        self._scripts = scripts
        self._blocking = blocking
        self._keys = keys
        self._consumer_id = consumer_id
        self._processing = keys.processing(consumer_id)
        self.prefetch = prefetch
        self._batch_size = batch_size
        self._block_timeout = block_timeout
        self._retry = retry
        self._lease = lease
        self._on_bad = on_bad
        self._reconcile = reconcile
        self._reconcile_needed = False
        self.buffer: deque[Message] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._bad: deque[tuple[bytes, str, bool]] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._wrong_type_reported = False
        self._blocked_until: float | None = None  # monotonic end of the blocking pop in progress
        self._retry_due: float | None = None  # monotonic time our earliest scheduled retry falls due
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._blocked_id: int | None = None  # CLIENT ID of the blocking connection, to unblock it on stop
        self._unblocker: aioredis.Redis = scripts.client

    # -- the getters' side -------------------------------------------------------------------------------

    async def get(self) -> Message:
        """The next item; waits for one. Raises ``QueueClosed`` once consuming stopped.

        An item is handed out only while this consumer's lease holds (its heartbeat is provably fresh):
        once it may have expired, recovery may have given the buffered items to other consumers.
        """
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
            await self._lease.wait_valid(self._block_timeout)
        message = self.buffer.popleft()
        if self.prefetch or self._getters:
            self._wake.set()  # refill: the buffer's count no longer hides the getters still waiting
        return message

    def _check_open(self) -> None:
        if self._failure is not None:
            raise QueueClosed(f"the fetcher stopped: {self._failure!r}") from self._failure
        if self._closed:
            raise QueueClosed("the queue is closed for getting")

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
        return min(self._batch_size, len(self._getters) + self.prefetch - len(self.buffer))

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, before: Callable[[], Awaitable[None]]) -> None:
        """Start fetching once ``before()`` (registering this consumer's heartbeat) has succeeded."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(before), name="asyncq-fetcher")
            self._task.add_done_callback(self._finished)

    @property
    def started(self) -> bool:
        return self._task is not None

    async def stop(self) -> list[Message]:
        """Stop claiming (bounded by the block timeout) and refuse further gets; returns the buffered items."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._wake_all()
        if self._task is not None and not self._task.done():
            await self._unblock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._block_timeout + 3.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                log.warning("fetcher did not stop in time; recovery will return what it claimed")
                self._task.cancel()
        buffered = list(self.buffer)
        self.buffer.clear()
        return buffered

    async def _unblock(self) -> None:
        """End a blocking pop in progress at once (it returns as if timed out) instead of cancelling it."""
        if self._blocked_id is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._unblocker.client_unblock(self._blocked_id)

    def due_in(self, seconds: float) -> None:
        """A retry of ours falls due in ``seconds``: end a blocking pop that would outlast it."""
        due = time.monotonic() + seconds
        self._retry_due = due if self._retry_due is None else min(self._retry_due, due)
        if self._blocked_until is not None and time.monotonic() + seconds < self._blocked_until - 0.05:
            task = asyncio.create_task(self._unblock(), name="asyncq-unblock")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def request_reconcile(self) -> None:
        """Check the processing list against what this process holds before claiming more (see _run)."""
        self._reconcile_needed = True
        self._wake.set()

    def keep_only(self, held: set[bytes]) -> int:
        """Drop buffered items that are no longer in our processing list (recovery took them back)."""
        before = len(self.buffer)
        self.buffer = deque(m for m in self.buffer if m.raw in held)
        return before - len(self.buffer)

    @property
    def failure(self) -> BaseException | None:
        """Why the fetcher stopped by itself (a refusal from Redis), if it did."""
        return self._failure

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
        self._wake_all()

    # -- the Redis side ----------------------------------------------------------------------------------

    async def _run(self, before: Callable[[], Awaitable[None]]) -> None:
        outage = Outage("fetch", log)
        registered = False
        while not self._stop.is_set():
            try:
                if not registered:
                    await before()
                    registered = True
                if self._reconcile_needed:
                    # A pop whose reply was lost (timeout, cut) may have moved items to our processing list
                    # that nobody holds; only the fetcher claims, so checking here cannot race a claim.
                    await self._reconcile()
                    self._reconcile_needed = False
                while self._bad:
                    await self._on_bad(*self._bad[0])
                    self._bad.popleft()
                if not self._lease.valid():
                    # Claim nothing we could not prove we own; the heartbeat renews or reconciles first.
                    await self._lease.wait_valid(self._block_timeout)
                    continue
                want = self._want()
                if want <= 0:
                    self._wake.clear()
                    if self._want() <= 0 and not self._stop.is_set():
                        await self._wake.wait()
                    continue
                raws = await self._claim(want)
                outage.recovered()
                self._wrong_type_reported = False
                self._deliver(raws)
            except (RedisError, OSError) as exc:
                self._blocked_id = None  # the connection may be new after the failure
                self._reconcile_needed = True
                wrong_type = isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc)
                if wrong_type:
                    await self._report_wrong_type()
                elif isinstance(exc, RedisError) and not (is_transient(exc) or is_out_of_memory(exc)):
                    raise  # a refusal that waiting does not cure (NOPERM, a script error): stop consuming
                delay = outage.failed(exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()

    async def _claim(self, want: int) -> list[bytes]:
        """Up to ``want`` items: a non-blocking batch, else the one item of a bounded blocking pop.

        The popped item is handed out at once rather than after a second round trip for more: on a queue
        that was empty, that round trip is most of the item's latency, and the next pass claims the rest.
        """
        raws, wait = await self._claim_batch(want)
        if raws:
            return raws
        if self._blocked_id is None:
            self._blocked_id = int(await self._blocking.client_id())
        if self._stop.is_set():
            return []
        # No await from here to the pop: a retry scheduled meanwhile either shortens this timeout or, once
        # _blocked_until is set, unblocks the pop (due_in).
        now = time.monotonic()
        if self._retry_due is not None and self._retry_due <= now:
            self._retry_due = None
        local = self._retry_due - now if self._retry_due is not None else self._block_timeout
        timeout = max(0.01, min(self._block_timeout, wait, local))
        self._blocked_until = time.monotonic() + timeout
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
        return [raw] if isinstance(raw, bytes) else []

    async def _claim_batch(self, want: int) -> tuple[list[bytes], float]:
        """The FETCH script; also returns how long until the next retry falls due (seconds)."""
        fetched = await self._scripts.fetch(self._consumer_id, want)
        return fetched.raws, self._block_timeout if fetched.next_due is None else fetched.next_due

    def _deliver(self, raws: list[bytes]) -> None:
        for raw in raws:
            try:
                message = decode(raw)
            except BadEnvelope as exc:
                self._bad.append((raw, str(exc), False))
                continue
            if self._retry.exhausted(message.attempts):
                reason = f"delivered {message.attempts} times without success (max_deliveries)"
                self._bad.append((raw, reason, True))
                continue
            self.buffer.append(message)
            self._wake_next()

    async def _report_wrong_type(self) -> None:
        if self._wrong_type_reported:
            return
        self._wrong_type_reported = True
        expected = {self._keys.queue: b"list", self._processing: b"list", self._keys.delayed: b"zset"}
        for key, kind in expected.items():
            with contextlib.suppress(RedisError, OSError):
                actual = await self._blocking.type(key)
                if actual not in (kind, b"none"):
                    log.error(
                        "key %s holds a %s, not a %s: another program wrote it; consuming waits until it "
                        "is fixed or deleted",
                        key,
                        actual.decode() if isinstance(actual, bytes) else actual,
                        kind.decode(),
                    )
