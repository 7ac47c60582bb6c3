"""The producer loop: P coroutines put N items in total, like the seed's ``produce()``, batched for speed."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from asyncq.cli.logs import ITEMS
from asyncq.core.queue import RedisQueue
from asyncq.producer.ratelimit import RateLimiter

items_log = logging.getLogger(ITEMS)


@dataclass(frozen=True)
class ProduceConfig:
    count: int
    producers: int = 5
    rate: float = 0.0
    size: int = 10
    batch: int = 100
    wait: bool = True


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
    queue: RedisQueue, config: ProduceConfig, progress: Callable[[int], None] = lambda n: None
) -> ProduceResult:
    """Put ``config.count`` items; with ``config.wait``, then wait until consumers processed all of them."""
    limiter = RateLimiter(config.rate) if config.rate > 0 else None
    verbose = items_log.isEnabledFor(logging.INFO)

    async def one(producer: int, share: int) -> None:
        sent = 0
        while sent < share:
            want = min(config.batch, share - sent)
            if limiter is not None:
                want = await limiter.take(want)
            items = [make_item(producer, config.size) for _ in range(want)]
            await queue.put_many(items)
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
        await queue.join()
        joined_after = time.perf_counter() - start
    return ProduceResult(config.count, produced, joined_after)
