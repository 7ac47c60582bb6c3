"""The lease: whether this consuming process can still prove it owns the items it holds.

The heartbeat renews it; the fetcher hands out and claims items only while it holds. It is the one state
the heartbeat and the fetcher share: the heartbeat writes it, the fetcher reads it and reconciles after a
lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class Lease:
    """Holds from a heartbeat Redis accepted until that heartbeat's TTL would run out (less a margin).

    A heartbeat that finds the key had expired revokes it: recovery may have given the items to others, so
    it holds again only once the fetcher has reconciled what it holds with the processing hash and list. A
    refusal the heartbeat cannot get past (NOPERM) fails it for good.
    """

    def __init__(self, ttl: float, margin: float) -> None:
        self._span = max(0.0, ttl - margin)
        self._renewed_at: float | None = None
        self.revoked = False
        self.generation = 0  # raised by each revoke, so a reconcile that began before it cannot restore
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()

    def valid(self) -> bool:
        return not self.revoked and self._renewed_at is not None and time.monotonic() - self._renewed_at < self._span

    def renew(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) found the key alive."""
        self._renewed_at = sent_at
        self._changed.set()

    def revoke(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` found the key expired (and set it again)."""
        self.revoked = True
        self._renewed_at = sent_at
        self.generation += 1
        self._changed.set()

    def restore(self, generation: int) -> None:
        """A reconcile that began at ``generation`` finished: the lease holds again, unless it was revoked
        once more meanwhile (that reconcile may have read the processing hash and list before the new lapse)."""
        if generation == self.generation:
            self.revoked = False
            self._changed.set()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the lease to change."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
