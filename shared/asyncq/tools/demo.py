"""``asyncq demo``: the seed's program as separate OS processes: P producers and C consumers through one Redis.

With no ``REDIS_URL`` it starts a private ``redis-server`` on a free loopback port and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncq.core.connection import connect, redact
from asyncq.tools.embedded import EmbeddedRedis


@dataclass(frozen=True)
class DemoConfig:
    producers: int = 2
    consumers: int = 3
    concurrency: int = 10
    count: int = 200
    work: str = "0-0.1"
    rate: float = 0.0
    queue: str = "asyncq-demo"
    verbose: bool = False


@contextlib.asynccontextmanager
async def redis_for_demo(url: str | None) -> AsyncIterator[str]:
    """``url`` if given, else a private redis-server for the demo's lifetime."""
    if url:
        yield url
        return
    server = EmbeddedRedis()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


async def _spawn(module: str, args: list[str], url: str, verbose: bool) -> asyncio.subprocess.Process:
    env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        *(["-v"] if verbose else []),
        env=env,
        stdout=None if verbose else asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )


def _split(count: int, parts: int) -> list[int]:
    base, extra = divmod(count, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


Monitor = Callable[[str, str, asyncio.Event], Coroutine[Any, Any, None]]


async def run_demo(config: DemoConfig, url: str, console: Console, monitor: Monitor | None = None) -> int:
    """Run the processes, show progress, print the final table. Returns the exit code."""
    console.print(f"[bold]asyncq demo[/]: Redis at {redact(url)}, queue {config.queue!r}")
    check = connect(url)
    try:
        await check.delete(*[f"asyncq:{{{config.queue}}}:{k}" for k in ("unfinished", "totals")])
    finally:
        await check.aclose()
    with tempfile.TemporaryDirectory(prefix="asyncq-demo-") as tmp:
        summaries = [Path(tmp) / f"consumer-{n}.json" for n in range(config.consumers)]
        consumers = [
            await _spawn(
                "asyncq.consumer",
                [
                    "--queue",
                    config.queue,
                    "--concurrency",
                    str(config.concurrency),
                    "--work",
                    config.work,
                    "--summary-file",
                    str(path),
                    # livelier figures on the dashboard (a consumer silent for 3 s is presumed dead)
                    "--heartbeat",
                    "1",
                ],
                url,
                config.verbose,
            )
            for path in summaries
        ]
        start = time.perf_counter()
        producers = [
            await _spawn(
                "asyncq.producer",
                [
                    "--queue",
                    config.queue,
                    "--count",
                    str(share),
                    "--producers",
                    "1",
                    "--wait",
                    "--rate",
                    str(config.rate / config.producers if config.rate else 0),
                ],
                url,
                config.verbose,
            )
            for share in _split(config.count, config.producers)
        ]
        finished = asyncio.Event()
        watcher = asyncio.create_task(monitor(url, config.queue, finished)) if monitor else None
        outputs = await asyncio.gather(*(p.communicate() for p in producers))
        elapsed = time.perf_counter() - start
        finished.set()
        if watcher is not None:
            await watcher
        for proc in consumers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        consumer_outputs = await asyncio.gather(*(p.communicate() for p in consumers))
        for out, _ in [*outputs, *consumer_outputs]:
            if out:
                console.print(out.decode().rstrip(), markup=False, highlight=False)
        failed = [p.returncode for p in [*producers, *consumers] if p.returncode != 0]
        console.print(_table(config, [_load(p) for p in summaries], elapsed))
        return 1 if failed else 0


def _load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def _table(config: DemoConfig, summaries: list[dict[str, Any]], elapsed: float) -> Table:
    table = Table(
        title=f"{config.count} items, {config.producers} producer and {config.consumers} consumer "
        f"processes, {elapsed:.2f} s end to end ({config.count / elapsed:,.0f} items/s)"
    )
    for column in ("consumer", "items", "items/s", "latency p50 (ms)", "latency p99 (ms)"):
        table.add_column(column, justify="left" if column == "consumer" else "right")
    for summary in summaries:
        latency = summary.get("latency_ms", {})
        table.add_row(
            str(summary.get("consumer", "?")),
            str(summary.get("processed", "?")),
            f"{summary.get('items_per_second', 0):,.0f}",
            f"{latency.get('p50', 0):.2f}",
            f"{latency.get('p99', 0):.2f}",
        )
    total = sum(int(s.get("processed", 0)) for s in summaries)
    table.add_section()
    table.add_row("all", str(total), f"{total / elapsed:,.0f}", "", "")
    return table
