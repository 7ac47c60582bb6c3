"""What ``asyncq web`` knows about the server: the queues on it, a snapshot of each, a rolling history.

One task samples about once a second (``asyncq.tools.snapshot``, the figures of ``asyncq watch``) and keeps
the last few minutes of each queue's rates and latency, so that a page opened now already has its charts.
The queues are found with SCAN (never KEYS) over ``asyncq:{*}:*``, every few samples. A Redis outage is
recorded (since when, why) and waited out; the last figures stay shown meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asyncq.core.failures import describe
from asyncq.core.histogram import Histogram
from asyncq.tools import snapshot
from asyncq.tools.snapshot import Snapshot

log = logging.getLogger(__name__)

HISTORY_SECONDS = 300  # the charts' window: the last five minutes, a point a second
# Consumers publish their latency digest with the heartbeat (every 2 s by default): a point's latency is that
# of the items started over the last few samples, else most points would see no new digest.
LATENCY_SAMPLES = 5
DISCOVER_EVERY = 5  # samples between two SCANs for queues
_QUEUE_KEY = re.compile(rb"^asyncq:\{([A-Za-z0-9_.-]{1,100})\}:")


@dataclass(frozen=True)
class Point:
    """One sample of the charts: items in and out per second since the previous sample, and the
    enqueue-to-start latency of the items started in the last ``LATENCY_SAMPLES`` samples (None: none)."""

    at: float
    put_rate: float
    done_rate: float
    p50_ms: float | None
    p99_ms: float | None

    def to_json(self) -> list[Any]:
        return [round(self.at, 3), round(self.put_rate, 2), round(self.done_rate, 2), self.p50_ms, self.p99_ms]


@dataclass
class QueueState:
    """The last snapshot of one queue and its history."""

    last: Snapshot | None = None
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=HISTORY_SECONDS))
    _latencies: deque[Histogram] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def add(self, snap: Snapshot) -> None:
        previous, latency = self.last, snap.latency
        if previous is not None and snap.taken_at > previous.taken_at:
            elapsed = snap.taken_at - previous.taken_at
            started = latency.minus(self._latencies[0]) if self._latencies else Histogram()
            self.points.append(
                Point(
                    snap.taken_at,
                    max(0, _total(snap, "enqueued") - _total(previous, "enqueued")) / elapsed,
                    max(0, _done(snap) - _done(previous)) / elapsed,
                    round(started.quantile(0.5) * 1000, 3) if started.count else None,
                    round(started.quantile(0.99) * 1000, 3) if started.count else None,
                )
            )
        self.last = snap
        self._latencies.append(latency)

    @property
    def rates(self) -> tuple[float, float]:
        return (self.points[-1].put_rate, self.points[-1].done_rate) if self.points else (0.0, 0.0)


def _total(snap: Snapshot, name: str) -> int:
    return snap.totals.get(name, 0)


def _done(snap: Snapshot) -> int:
    # Out of the queue for good: processed, or given up on (dead letters).
    return _total(snap, "processed") + _total(snap, "dead")


@dataclass
class Outage:
    since: float
    reason: str


class Monitor:
    """Samples every queue on the server of ``client`` each ``interval`` seconds while ``run()`` runs.

    ``always`` names a queue listed even before it has any key (the ``--queue`` of the command)."""

    def __init__(self, client: aioredis.Redis, *, always: str | None = None, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval
        self.always = always
        self.queues: dict[str, QueueState] = {}
        self.outage: Outage | None = None
        self._passes = 0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.sample()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def sample(self) -> None:
        """One pass: find the queues (every few passes), take a snapshot of each."""
        try:
            async with asyncio.timeout(max(10.0, 2 * self.interval)):  # a guard: socket timeouts come first
                if self._passes % DISCOVER_EVERY == 0 or self.outage is not None:
                    await self._discover()
                for name, state in list(self.queues.items()):
                    state.add(await snapshot.take(self.client, name))
        except (RedisError, OSError, TimeoutError) as exc:
            if self.outage is None:
                self.outage = Outage(time.time(), "")
                log.warning("Redis unreachable: %s", describe(exc) if str(exc) else type(exc).__name__)
            self.outage.reason = (describe(exc) if str(exc) else type(exc).__name__).rstrip(".")
        else:
            if self.outage is not None:
                log.warning("Redis answers again")
            self.outage = None
            self._passes += 1

    async def _discover(self) -> None:
        found = {self.always} if self.always else set()
        async for key in self.client.scan_iter(match="asyncq:{*}:*", count=1000):
            match = _QUEUE_KEY.match(key if isinstance(key, bytes) else str(key).encode())
            if match:
                found.add(match.group(1).decode())
        for name in set(self.queues) - found:
            del self.queues[name]
        for name in sorted(found - set(self.queues)):
            self.queues[name] = QueueState()

    def redis_json(self) -> dict[str, Any]:
        if self.outage is None:
            return {"up": True}
        return {"up": False, "since": self.outage.since, "reason": self.outage.reason}

    def summary(self, name: str) -> dict[str, Any] | None:
        """The row of queue ``name`` in the list of queues (None before its first snapshot)."""
        state = self.queues.get(name)
        if state is None or state.last is None:
            return None
        snap = state.last
        put_rate, done_rate = state.rates
        return {
            "name": name,
            "depth": snap.depth,
            "oldest_age": snap.oldest_age,
            "in_flight": snap.claimed,
            "scheduled": snap.delayed,
            "retried": _total(snap, "retried"),
            "dead": snap.dead,
            "unfinished": snap.unfinished,
            "consumers": len(snap.consumers),
            "put_rate": round(put_rate, 2),
            "done_rate": round(done_rate, 2),
            "taken_at": snap.taken_at,
        }

    def detail(self, name: str) -> dict[str, Any] | None:
        """Everything the page of queue ``name`` shows but the dead letters."""
        state = self.queues.get(name)
        row = self.summary(name)
        if state is None or state.last is None or row is None:
            return None
        snap = state.last.to_json()
        return {
            **row,
            "in_progress": snap["in_progress"],
            "orphaned": snap["orphaned"],
            "totals": snap["totals"],
            "latency_ms": snap["latency_ms"],
            "consumers": snap["consumers"],
            "history": [p.to_json() for p in state.points],
        }

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
