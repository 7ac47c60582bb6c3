"""What one consuming process counts about itself; published with its heartbeat for `asyncq stats`/`watch`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from shared.latency import Histogram


@dataclass
class ConsumerStats:
    """Counters of one process and its enqueue-to-start latency histogram (seconds)."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    started: float = field(default_factory=time.time)
    latency: Histogram = field(default_factory=Histogram)

    def to_json(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "started": self.started,
            "latency": self.latency.to_json(),
        }
