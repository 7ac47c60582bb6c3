"""The consumer loop: C coroutines take items, run the handler, acknowledge; failures retry with backoff.

Shutdown (``stop`` set by a signal, or the queue drained with ``drain``): stop claiming, give back what was
claimed but not started, let items in progress finish within ``grace`` seconds, acknowledge them, leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from asyncq import tracing
from asyncq.cli.logs import ITEMS
from asyncq.consumer.handlers import Handler
from asyncq.consumer.metrics import Metrics
from asyncq.consuming.stats import ConsumerStats
from asyncq.core.envelope import Message
from asyncq.core.errors import QueueClosed, Reject
from asyncq.core.histogram import Histogram
from asyncq.core.queue import RedisQueue

log = logging.getLogger(__name__)
items_log = logging.getLogger(ITEMS)


@dataclass(frozen=True)
class ConsumeConfig:
    concurrency: int = 10
    drain: bool = False
    grace: float = 10.0
    timeout: float | None = None


@dataclass
class Summary:
    """What this process did: the end-of-run report, read from the queue's counters."""

    consumer: str
    stats: ConsumerStats
    seconds: float = 0.0

    @property
    def processed(self) -> int:
        return self.stats.processed

    @property
    def failed(self) -> int:
        return self.stats.failed

    @property
    def latency(self) -> Histogram:
        return self.stats.latency

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        lat = self.latency
        rate = f"{self.rate:,.0f}" if self.rate >= 100 else f"{self.rate:.3g}"
        return (
            f"consumer {self.consumer}: processed {self.processed} items in {self.seconds:.2f} s "
            f"({rate} items/s), failed {self.failed}; enqueue-to-start latency "
            f"p50 {lat.quantile(0.5) * 1000:.2f} ms, p90 {lat.quantile(0.9) * 1000:.2f} ms, "
            f"p99 {lat.quantile(0.99) * 1000:.2f} ms, max {lat.maximum * 1000:.2f} ms"
        )

    def to_json(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "consumer": self.consumer,
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.stats.retried,
            "dead_lettered": self.stats.dead_lettered,
            "seconds": self.seconds,
            "items_per_second": self.rate,
            "latency_ms": {
                "p50": lat.quantile(0.5) * 1000,
                "p90": lat.quantile(0.9) * 1000,
                "p99": lat.quantile(0.99) * 1000,
                "max": lat.maximum * 1000,
            },
        }


def label(payload: Any) -> str:
    """The seed prints the item's random hex string; show that when the payload has one."""
    if isinstance(payload, dict) and "data" in payload:
        return str(payload["data"])
    if isinstance(payload, list | tuple) and payload:
        return str(payload[0])
    return str(payload)


class Consumer:
    """Runs ``config.concurrency`` workers on ``queue`` with ``handler`` until ``stop`` (or drained)."""

    def __init__(
        self, queue: RedisQueue, handler: Handler, config: ConsumeConfig, metrics: Metrics | None = None
    ) -> None:
        self.queue = queue
        self.metrics = metrics
        self.handler = handler
        self.config = config
        self.summary = Summary(queue.consumer_id, queue.stats)
        self._verbose = items_log.isEnabledFor(logging.INFO)
        # Handler durations are timed only when something exports them.
        self._durations = queue.stats.handler if metrics is not None else None
        queue.concurrency = config.concurrency

    async def run(self, stop: asyncio.Event) -> Summary:
        """Consume until ``stop`` is set or (with ``drain``) the queue is drained; raises what made consuming
        stop by itself (Redis refusing a step, such as NOPERM) after the shutdown."""
        start = time.perf_counter()
        workers = [
            asyncio.create_task(self._work(n), name=f"asyncq-worker-{n}") for n in range(self.config.concurrency)
        ]
        stopped = asyncio.create_task(stop.wait(), name="asyncq-stop")
        # Workers end only once getting fails for good: that ends the run too.
        ended = asyncio.create_task(asyncio.wait(workers), name="asyncq-workers")
        waiters: list[asyncio.Task[Any]] = [stopped, ended]
        drained = asyncio.create_task(self.queue.join(), name="asyncq-drain") if self.config.drain else None
        if drained is not None:
            waiters.append(drained)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await self._shutdown(workers)
        self.summary.seconds = time.perf_counter() - start
        failure = self.queue.failure
        if failure is None and drained is not None and drained.done() and not drained.cancelled():
            failure = drained.exception()
        if failure is not None:
            raise failure
        return self.summary

    async def _shutdown(self, workers: list[asyncio.Task[None]]) -> None:
        given = await self.queue.stop_consuming()
        if given:
            log.info("gave back %d claimed item(s) not started", given)
        _, pending = await asyncio.wait(workers, timeout=self.config.grace)
        if pending:
            log.warning(
                "%d item(s) still in progress after the %.0f s grace: they go back to the queue",
                len(pending),
                self.config.grace,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _work(self, n: int) -> None:
        """One worker: get, handle, acknowledge, until getting is closed. Nothing a handler raises ends it."""
        name = f"{self.queue.consumer_id}/{n}"
        while True:
            try:
                message = await self.queue.get_message()
            except QueueClosed:
                return
            try:
                await self._handle(name, message)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours: say so loudly, but keep this worker consuming
                log.exception("worker %s: unexpected error handling item %s", name, message.id)

    async def _handle(self, name: str, message: Message) -> None:
        if not tracing.enabled():
            await self._process(name, message)
            return
        with tracing.processing(self.queue.name, message):
            await self._process(name, message)

    async def _process(self, name: str, message: Message) -> None:
        if self._verbose:
            latency = max(0.0, time.time() - message.enqueued_at)
            items_log.info(
                "Consumer %s got element <%s> in %0.5f seconds.",
                name,
                label(message.payload),
                latency,
                extra={
                    "item_id": message.id,
                    "consumer_id": self.queue.consumer_id,
                    "latency": latency,
                    "delivery": message.delivery,
                },
            )
        durations = self._durations
        started = time.perf_counter() if durations is not None else 0.0
        try:
            if self.config.timeout is None:
                await self.handler(message.payload)  # asyncio.timeout(None) would still cost ~4 us per item
            else:
                async with asyncio.timeout(self.config.timeout):
                    await self.handler(message.payload)
        except BaseException as exc:
            # Only a cancellation of this worker (shutdown) goes through. CancelledError raised by the handler
            # itself, SystemExit, KeyboardInterrupt or any other BaseException is the handler failing.
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                raise
            if not isinstance(exc, Exception):
                log.warning("item %s: the handler raised %s; counted as a failure", message.id, type(exc).__name__)
            if durations is not None:
                durations.record(time.perf_counter() - started)
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            tracing.failed(exc, reason[:500])
            if isinstance(exc, Reject):
                await self._dead(message, f"rejected: {exc}")
                return
            await self._failed(message, reason[:500])
            return
        if durations is not None:
            durations.record(time.perf_counter() - started)
        self.queue.ack(message)

    async def _dead(self, message: Message, reason: str) -> None:
        tracing.event("asyncq.dead_letter", {"asyncq.reason": reason})
        await self.queue.dead_letter(message, reason)

    async def _failed(self, message: Message, reason: str) -> None:
        policy = self.queue.retry_policy
        if policy.exhausted(message.delivery):
            await self._dead(message, f"failed {message.delivery} times; last: {reason}")
            return
        delay = policy.delay(message.delivery)
        log.warning("item %s failed (%s); retry %d in %.2f s", message.id, reason, message.delivery, delay)
        tracing.event("asyncq.retry", {"asyncq.retry.delay_s": delay, "asyncq.delivery": message.delivery})
        with contextlib.suppress(QueueClosed):
            await self.queue.retry(message, delay)
