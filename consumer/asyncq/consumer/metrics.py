"""Prometheus metrics and a health endpoint for one consumer process (``consumer --metrics-port``).

A small asyncio HTTP server (GET only): ``/metrics`` in the Prometheus text format, ``/healthz`` answering
200 when Redis answers and this consumer's heartbeat is fresh, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import ConnectionError, RedisError

from asyncq.core.histogram import Histogram
from asyncq.core.queue import RedisQueue

log = logging.getLogger(__name__)
T = TypeVar("T")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COUNTERS = (
    ("asyncq_processed", "Items processed successfully.", "processed"),
    ("asyncq_failed", "Handler failures (exceptions or timeouts).", "failed"),
    ("asyncq_retried", "Items scheduled for another attempt.", "retried"),
    ("asyncq_dead_lettered", "Items moved to the dead letters.", "dead_lettered"),
)


class Metrics:
    """The series of one consumer process, read at each scrape from the queue's counters (``queue.stats``):
    nothing is counted twice, and the per-item path pays nothing for Prometheus.

    The histograms come from asyncq's own log-bucket histograms (about 5% relative error), summed into the
    Prometheus buckets below.
    """

    def __init__(self, queue: RedisQueue[Any]) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        self.depth = 0
        self.up = 0
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        stats, label = self.queue.stats, [self.queue.name]
        for name, doc, field in _COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=["queue"])
            counter.add_metric(label, getattr(stats, field))
            yield counter
        yield _histogram("asyncq_handler_duration_seconds", "Time spent in the handler.", stats.handler, label)
        yield _histogram("asyncq_enqueue_to_start_seconds", "From put to the handler starting.", stats.latency, label)
        for name, doc, value in (
            ("asyncq_in_progress", "Items being handled now.", self.queue.in_progress),
            ("asyncq_queue_depth", "Items waiting in the queue.", self.depth),
            ("asyncq_redis_up", "1 when Redis answered the last scrape.", self.up),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["queue"])
            gauge.add_metric(label, value)
            yield gauge

    async def refresh(self) -> bool:
        """Read the figures that live in Redis; False when Redis did not answer."""
        try:
            self.depth = await _twice(self.queue.qsize)
        except (RedisError, OSError, TimeoutError):
            self.up = 0
            return False
        self.up = 1
        return True

    async def healthy(self) -> tuple[bool, str]:
        key = self.queue.keys.heartbeat(self.queue.consumer_id)
        try:
            alive = await _twice(lambda: self.queue.redis.exists(key))
        except (RedisError, OSError, TimeoutError) as exc:
            return False, f"redis unreachable: {type(exc).__name__}"
        if not alive:
            return False, "heartbeat missing or expired"
        return True, "ok"


def _histogram(name: str, doc: str, histogram: Histogram, label: list[str]) -> HistogramMetricFamily:
    counts, total = histogram.cumulative(_LATENCY_BUCKETS)
    buckets = [(str(bound), float(n)) for bound, n in zip(_LATENCY_BUCKETS, counts, strict=True)]
    family = HistogramMetricFamily(name, doc, labels=["queue"])
    family.add_metric(label, [*buckets, ("+Inf", float(histogram.count))], sum_value=total)
    return family


async def _twice(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` bounded to 2 s, tried again once after a connection error: after a Redis restart each
    pooled connection fails once before it reconnects, and one scrape should not report Redis down for it."""
    for attempt in (1, 2):
        try:
            async with asyncio.timeout(2.0):
                return await call()
        except (ConnectionError, OSError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _respond(metrics: Metrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(10.0):
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path.startswith("/metrics"):
                await metrics.refresh()
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
            elif path.startswith("/healthz"):
                ok, reason = await metrics.healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "text/plain; charset=utf-8", (reason + "\n").encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain; charset=utf-8", b"not found\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
    except (TimeoutError, OSError, UnicodeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_metrics(metrics: Metrics, port: int, host: str = "0.0.0.0") -> AsyncIterator[None]:  # noqa: S104
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` while the block runs."""
    server = await asyncio.start_server(lambda r, w: _respond(metrics, r, w), host, port)
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
