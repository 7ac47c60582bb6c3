"""How far ahead of its ``get()`` callers a consuming process claims: a fixed number when the user set one,
else a number that follows the backlog.

The fetcher claims again once its buffer is half empty. The adaptive rule looks at each claim as it
returns. Items still waiting in Redis after it while getters waited for it (or the buffer had nearly run
out) means the handlers sat, or nearly sat, idle on a round trip with a backlog there: claim twice as far
ahead next time, up to ``ceiling`` (the batch size). A claim that left nothing waiting means the queue ran dry:
halve the distance, down to ``floor``. Slow handlers never leave getters waiting, so a process whose
handlers are busy keeps claiming only for them and leaves the rest of the queue to the other consumers; a
process that outruns its claims soon fetches a batch per round trip.
"""

from __future__ import annotations

_FIRST_STEP = 16  # the first growth from 0: a claim of a few items is mostly round trip


class Prefetch:
    """``value`` items beyond the waiting getters; ``fixed`` (a number) disables adaptation."""

    def __init__(self, fixed: int | None, *, ceiling: int, floor: int = 0) -> None:
        self.adaptive = fixed is None
        self.floor = floor if fixed is None else fixed
        self.ceiling = max(self.floor, ceiling)
        self.value = self.floor

    def __int__(self) -> int:
        return self.value

    def claimed(self, backlog: int, *, starved: bool) -> None:
        """A claim returned, leaving ``backlog`` items waiting in Redis; ``starved``: getters waited on it."""
        if not self.adaptive:
            return
        if backlog > 0 and starved:
            self.value = min(self.ceiling, max(_FIRST_STEP, self.value * 2))
        elif backlog == 0:
            self.value = max(self.floor, self.value // 2)
