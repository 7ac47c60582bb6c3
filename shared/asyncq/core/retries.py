"""The retry policy of a queue: how many deliveries an item gets and how long a failed one waits.

One unit decides it for every part: the fetcher (an item delivered too often goes to the dead letters on
sight), ``RedisQueue.retry()`` and the consumer's workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncq.core.backoff import exponential


@dataclass(frozen=True)
class RetryPolicy:
    """``max_deliveries`` deliveries at most; the wait after the n-th failure is about ``base * 2**(n-1)``
    seconds, capped at ``cap``, with ±25% jitter so that items failing together do not return together."""

    max_deliveries: int = 5
    base: float = 1.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        if self.max_deliveries < 1 or self.base < 0 or self.cap < 0:
            raise ValueError("max_deliveries must be >= 1, base and cap >= 0")

    def exhausted(self, delivery: int) -> bool:
        """Was ``delivery`` (1 for the first) the last one allowed?"""
        return delivery >= self.max_deliveries

    def delay(self, delivery: int) -> float:
        """Seconds to wait after the ``delivery``-th delivery failed."""
        return exponential(delivery - 1, self.base, self.cap, jitter=(0.75, 1.25))
