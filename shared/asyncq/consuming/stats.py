"""What one consuming process counts about itself: the one source of its counters.

The consuming machinery counts (an acknowledgement is a processed item, a retry a failure); the heartbeat
publishes the counters for ``asyncq stats``/``watch``, the consumer's end-of-run summary reads them, and the
Prometheus collector exports them at each scrape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from asyncq.core.histogram import Histogram


@dataclass
class ConsumerStats:
    """Counters of one process, its enqueue-to-start latency and handler durations (seconds)."""

    concurrency: int = 0  # informational: the coroutines that consume (set by the consumer CLI)
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    started: float = field(default_factory=time.time)
    latency: Histogram = field(default_factory=Histogram)
    handler: Histogram = field(default_factory=Histogram)

    def to_json(self) -> dict[str, Any]:
        """What the heartbeat carries (the handler durations stay local: only metrics need them)."""
        return {
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "started": self.started,
            "latency": self.latency.to_json(),
        }
