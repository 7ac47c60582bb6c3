"""Prometheus metrics and a health endpoint for one consumer process (``consumer --metrics-port``).

A small asyncio HTTP server (GET only): ``/metrics`` in the Prometheus text format, ``/healthz`` answering
200 when Redis answers and this consumer's heartbeat is fresh, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import ConnectionError, RedisError

from shared.queue import RedisQueue

log = logging.getLogger(__name__)
T = TypeVar("T")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The instruments of one consumer process, in a registry of its own."""

    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        labels = ["queue"]
        r = self.registry
        self.processed = Counter("asyncq_processed", "Items processed successfully.", labels, registry=r)
        self.failed = Counter("asyncq_failed", "Handler failures (exceptions or timeouts).", labels, registry=r)
        self.retried = Counter("asyncq_retried", "Items scheduled for another attempt.", labels, registry=r)
        self.dead_lettered = Counter("asyncq_dead_lettered", "Items moved to the dead letters.", labels, registry=r)
        self.handler_seconds = Histogram(
            "asyncq_handler_duration_seconds",
            "Time spent in the handler.",
            labels,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.latency_seconds = Histogram(
            "asyncq_enqueue_to_start_seconds",
            "From put to the handler starting.",
            labels,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.in_progress = Gauge("asyncq_in_progress", "Items being handled now.", labels, registry=r)
        self.queue_depth = Gauge("asyncq_queue_depth", "Items waiting in the queue.", labels, registry=r)
        self.up = Gauge("asyncq_redis_up", "1 when Redis answered the last scrape.", labels, registry=r)
        self.labels = {"queue": queue.name}
        # Export every series from the start (zeros included): a counter that appears only at its first
        # increment hides that increment from rate() and increase().
        counters = (self.processed, self.failed, self.retried, self.dead_lettered)
        histograms = (self.handler_seconds, self.latency_seconds)
        gauges = (self.in_progress, self.queue_depth, self.up)
        instruments: list[Counter | Gauge | Histogram] = [*counters, *histograms, *gauges]
        for metric in instruments:
            metric.labels(**self.labels)

    async def refresh(self) -> bool:
        """Update the gauges that live in Redis; False when Redis did not answer."""
        self.in_progress.labels(**self.labels).set(self.queue.in_progress)
        try:
            self.queue_depth.labels(**self.labels).set(await _twice(self.queue.qsize))
        except (RedisError, OSError, TimeoutError):
            self.up.labels(**self.labels).set(0)
            return False
        self.up.labels(**self.labels).set(1)
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
