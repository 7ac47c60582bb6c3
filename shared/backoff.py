"""Capped exponential backoff with jitter, and the one-line-per-outage logging that goes with it."""

from __future__ import annotations

import logging
import random
import time

from shared.connection import describe


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
            self.log.warning("%s: Redis unavailable (%s); retrying with backoff", self.what, describe(exc))
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.5, 1.0))

    def recovered(self) -> None:
        if self.since is not None:
            self.log.warning("%s: Redis available again after %.1f s", self.what, time.monotonic() - self.since)
        self.since = None
        self.failures = 0
