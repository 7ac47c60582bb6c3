"""Capped exponential backoff with jitter, and the one-line-per-outage logging that goes with it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from asyncq.core.failures import describe, is_transient, is_unreachable

T = TypeVar("T")


def exponential(n: int, base: float, cap: float, *, jitter: tuple[float, float]) -> float:
    """``base * 2**n`` capped at ``cap``, times a random factor in ``jitter`` (so that many waiters do not
    come back in step). The one backoff formula of asyncq: Redis outages and item retries both use it."""
    return float(min(cap, base * 2 ** max(0, n)) * random.uniform(*jitter))


class Outage:
    """Tracks one loop's failures: logs once when an outage starts and once when it ends.

    ``failed()`` returns how long to wait before the next try: ``base * 2**n`` capped at ``cap``, with full
    jitter on the upper half so that many consumers do not reconnect in step.
    """

    def __init__(self, what: str, log: logging.Logger, *, base: float = 0.1, cap: float = 5.0) -> None:
        self.what = what
        self.log = log
        self.base = base
        self.cap = cap
        self.failures = 0
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        if self.since is None:
            self.since = time.monotonic()
            state = "Redis unavailable" if is_unreachable(exc) else "Redis refused"
            self.log.warning("%s: %s (%s); retrying with backoff", self.what, state, describe(exc))
        delay = exponential(self.failures, self.base, self.cap, jitter=(0.5, 1.0))
        self.failures += 1
        return delay

    def recovered(self) -> None:
        if self.since is not None:
            self.log.warning("%s: Redis available again after %.1f s", self.what, time.monotonic() - self.since)
        self.since = None
        self.failures = 0


async def retrying(
    what: str, call: Callable[[], Awaitable[T]], log: logging.Logger, attempts: int | None = None
) -> T | None:
    """Run ``call()`` until it succeeds, backing off through transient Redis failures.

    A permanent Redis error is raised. With ``attempts``, gives up after that many failures, logs it and
    returns None (for steps whose failure recovery covers, such as giving items back on close).
    """
    outage = Outage(what, log)
    tries = 0
    while True:
        try:
            result = await call()
        except (RedisError, OSError) as exc:
            tries += 1
            permanent = isinstance(exc, RedisError) and not is_transient(exc)
            if attempts is not None and (permanent or tries >= attempts):
                log.warning("%s failed (%s); recovery will handle it", what, describe(exc))
                return None
            if permanent:
                raise
            await asyncio.sleep(outage.failed(exc))
            continue
        outage.recovered()
        return result
