"""A small mergeable latency histogram: log-spaced buckets, about 5% relative error, a few hundred bytes as JSON.

Consumers publish it with their heartbeat, so the dashboard and the demo merge the figures of every process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_FLOOR = 1e-5  # 10 us: anything faster lands in bucket 0
_GROWTH = 1.1
_LOG_GROWTH = math.log(_GROWTH)


@dataclass
class Histogram:
    """Counts of latencies (seconds) in buckets ``[_FLOOR * 1.1**i, _FLOOR * 1.1**(i+1))``."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    maximum: float = 0.0

    def record(self, seconds: float) -> None:
        index = 0 if seconds <= _FLOOR else int(math.log(seconds / _FLOOR) / _LOG_GROWTH)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.maximum = max(self.maximum, seconds)

    def quantile(self, q: float) -> float:
        """The latency below which a fraction ``q`` of the recorded values lie (bucket midpoint)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return float(min(self.maximum, _FLOOR * _GROWTH ** (index + 0.5)))
        return self.maximum

    def cumulative(self, bounds: Iterable[float]) -> tuple[list[int], float]:
        """Counts at or below each of ``bounds`` and the approximate sum of all values (each recorded value
        taken at its bucket's midpoint): the shape of a Prometheus histogram."""
        values = sorted((min(self.maximum, _FLOOR * _GROWTH ** (i + 0.5)), n) for i, n in self.buckets.items())
        counts: list[int] = []
        seen = 0
        position = 0
        for bound in bounds:
            while position < len(values) and values[position][0] <= bound:
                seen += values[position][1]
                position += 1
            counts.append(seen)
        return counts, sum(value * n for value, n in values)

    def merge(self, other: Histogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.maximum = max(self.maximum, other.maximum)

    def minus(self, earlier: Histogram) -> Histogram:
        """The values recorded since ``earlier`` (a snapshot of the same histogram)."""
        diff = Histogram()
        for index, n in self.buckets.items():
            left = n - earlier.buckets.get(index, 0)
            if left > 0:
                diff.buckets[index] = left
                diff.count += left
        diff.maximum = self.maximum if diff.count else 0.0
        return diff

    def to_json(self) -> dict[str, object]:
        return {"b": {str(k): v for k, v in self.buckets.items()}, "n": self.count, "max": self.maximum}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Histogram:
        raw = data.get("b", {})
        buckets = {int(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        count = data.get("n", 0)
        maximum = data.get("max", 0.0)
        return cls(
            buckets,
            int(count) if isinstance(count, int | float) else 0,
            float(maximum) if isinstance(maximum, int | float) else 0.0,
        )

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        total = cls()
        for part in parts:
            total.merge(part)
        return total
