"""A token bucket shared by a process's producer coroutines (``--rate``)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Grants up to ``rate`` items per second overall, with a burst of at most one tenth of a second."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = max(1.0, rate / 10)
        self._tokens = 0.0
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self, want: int) -> int:
        """Wait for at least one token; returns how many of ``want`` may go now."""
        while True:
            self._refill()
            if self._tokens >= 1:
                granted = min(want, int(self._tokens))
                self._tokens -= granted
                return granted
            await asyncio.sleep((1 - self._tokens) / self.rate)
