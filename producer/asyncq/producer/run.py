"""The producer loop: P coroutines put N items in total, like the seed's ``produce()``, batched for speed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from asyncq.cli.logs import ITEMS
from asyncq.core.queue import RedisQueue
from asyncq.producer.ratelimit import RateLimiter

items_log = logging.getLogger(ITEMS)
RUN = os.urandom(4).hex()  # --keys: the keys of one producer run are its own
_numbers = itertools.count()


@dataclass(frozen=True)
class ProduceConfig:
    count: int
    producers: int = 5
    rate: float = 0.0
    size: int = 10
    batch: int = 100
    wait: bool = True
    delay: float = 0.0  # seconds each item waits in Redis before consumers can take it
    priority: tuple[int, int] | None = None  # a priority queue's items: priorities drawn from this range
    shutdown: bool = False  # shut the queue down once done (after the join, with wait)
    keys: bool = False  # each item gets an idempotency key (its producer's run id and number)


@dataclass(frozen=True)
class Waiting:
    """What a producer that waits for its items sees: the queue's ``unfinished`` counter (what ``join()``
    waits for, items of every producer) and how many consumers have a live heartbeat."""

    count: int
    unfinished: int
    consumers: int

    @property
    def done(self) -> int:
        return min(self.count, max(0, self.count - self.unfinished))

    @property
    def who(self) -> str:
        if self.consumers == 0:
            return "no consumer is running"
        return f"{self.consumers} consumer{'' if self.consumers == 1 else 's'} running"

    def line(self) -> str:
        done, left = f"{self.done:,} done", f"{self.unfinished:,} to go"
        return f"waiting for {self.count:,} items to be processed: {done}, {left}; {self.who}"


@dataclass(frozen=True)
class ProduceResult:
    items: int
    seconds: float
    joined_after: float | None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


def make_item(producer: int, size: int) -> dict[str, object]:
    """A random hex payload of ``size`` characters, as the seed's ``makeitem``."""
    return {"data": os.urandom((size + 1) // 2).hex()[:size], "producer": producer}


def shares(count: int, producers: int) -> list[int]:
    """Split ``count`` items over ``producers`` as evenly as possible."""
    base, extra = divmod(count, producers)
    return [base + (1 if n < extra else 0) for n in range(producers)]


async def produce(
    queue: RedisQueue[Any],
    config: ProduceConfig,
    progress: Callable[[int], None] = lambda n: None,
    waiting: Callable[[Waiting], None] = lambda w: None,
) -> ProduceResult:
    """Put ``config.count`` items; with ``config.wait``, then wait until consumers processed all of them,
    telling ``waiting`` what it waits for when it starts and about every second after."""
    limiter = RateLimiter(config.rate) if config.rate > 0 else None
    verbose = items_log.isEnabledFor(logging.INFO)

    async def one(producer: int, share: int) -> None:
        sent = 0
        while sent < share:
            want = min(config.batch, share - sent)
            if limiter is not None:
                want = await limiter.take(want)
            items = [make_item(producer, config.size) for _ in range(want)]
            await put(queue, config, items)
            if verbose:
                for item in items:
                    items_log.info(
                        "Producer %d added <%s> to queue.", producer, item["data"], extra={"producer": producer}
                    )
            progress(want)
            sent += want

    start = time.perf_counter()
    await asyncio.gather(*(one(n, share) for n, share in enumerate(shares(config.count, config.producers))))
    await queue.flush()
    produced = time.perf_counter() - start
    joined_after = None
    if config.wait:
        await wait_processed(queue, config.count, waiting)
        joined_after = time.perf_counter() - start
    if config.shutdown:
        await queue.shutdown()
    return ProduceResult(config.count, produced, joined_after)


async def put(queue: RedisQueue[Any], config: ProduceConfig, items: list[dict[str, object]]) -> None:
    """Put one batch: as (priority, item) pairs on a priority queue; with --keys and --delay."""
    entries: list[Any] = items
    if config.priority is not None:
        low, high = config.priority
        entries = [(random.randint(low, high), item) for item in items]
    keys = [f"{RUN}-{item['producer']}-{next(_numbers)}" for item in items] if config.keys else None
    await queue.put_many(entries, keys=keys, delay=config.delay or None)


async def observe(queue: RedisQueue[Any], count: int) -> Waiting:
    """The unfinished counter and the live consumers (heartbeat keys, found with SCAN)."""
    unfinished = await queue.unfinished()
    consumers = 0
    async for _ in queue.redis.scan_iter(match=queue.keys.heartbeat_pattern, count=1000):
        consumers += 1
    return Waiting(count, unfinished, consumers)


async def wait_processed(
    queue: RedisQueue[Any], count: int, waiting: Callable[[Waiting], None], interval: float = 1.0
) -> None:
    """``queue.join()``, and meanwhile a look at what it waits for every ``interval`` seconds.

    join() itself is woken by Redis; the looks are only for the person watching, and a failed one is skipped
    (join() reports and rides out an outage).
    """
    joined = asyncio.create_task(queue.join())
    try:
        while not joined.done():
            with contextlib.suppress(RedisError, OSError):
                waiting(await observe(queue, count))
            await asyncio.wait({joined}, timeout=interval)
    finally:
        if not joined.done():
            joined.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await joined
    joined.result()
