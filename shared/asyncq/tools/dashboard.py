"""What ``asyncq stats`` prints and what ``asyncq watch`` and ``asyncq demo`` keep on screen.

Every figure comes from ``asyncq.tools.snapshot``: one snapshot per refresh. Throughput (items/s in and out) is the
change of the queue's ``enqueued`` and ``processed`` totals between snapshots; the recent latency is, per live
consumer, its published histogram now minus the same histogram at the start of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from asyncq.core.connection import TLSOptions, connect, describe, redact
from asyncq.core.histogram import Histogram
from asyncq.tools import snapshot
from asyncq.tools.snapshot import Snapshot

WINDOW = 60.0
BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
SETTLE = 3.0  # longest wait at the end of a demo for the last heartbeats


@dataclass(frozen=True)
class _Sample:
    at: float
    enqueued: int
    processed: int
    latency: dict[str, Histogram]


class History:
    """The snapshots of the last ``window`` seconds: throughput and the latency of recently started items."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[_Sample] = deque()

    def add(self, snap: Snapshot) -> None:
        totals = snap.totals
        latency = {c.id: c.latency for c in snap.consumers}
        self._samples.append(_Sample(snap.taken_at, totals.get("enqueued", 0), totals.get("processed", 0), latency))
        # Keep the last sample at or before the window's start, so the figures cover the whole window.
        while len(self._samples) > 2 and self._samples[1].at <= snap.taken_at - self.window:
            self._samples.popleft()

    def rates(self) -> tuple[list[float], list[float]]:
        """Items/s put and processed between consecutive snapshots, oldest first."""
        put: list[float] = []
        done: list[float] = []
        for before, after in pairwise(self._samples):
            span = after.at - before.at
            if span > 0:  # a counter that went down was reset (the demo does): count nothing then
                put.append(max(0, after.enqueued - before.enqueued) / span)
                done.append(max(0, after.processed - before.processed) / span)
        return put, done

    def latency(self) -> Histogram:
        """Enqueue-to-start latencies of the items that live consumers started within the window."""
        if len(self._samples) < 2:
            return Histogram()
        first, last = self._samples[0].latency, self._samples[-1].latency
        return Histogram.merged(h.minus(first.get(cid, Histogram())) for cid, h in last.items())

    def __len__(self) -> int:
        return len(self._samples)


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """``values`` as block characters scaled to their peak, newest on the right; at most ``width`` wide
    (groups of neighbours averaged when there are more values)."""
    group = -(-len(values) // width) if values else 1
    if group > 1:
        start = len(values) % group  # complete groups end on the newest value
        values = [sum(values[i : i + group]) / group for i in range(start, len(values), group)]
    peak = max(values, default=0.0)
    if peak <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[max(0, min(7, -(-int(v / peak * 800) // 100) - 1))] for v in values)


def duration(seconds: float | None) -> str:
    """A short human duration: ``850 ms``, ``4.2 s``, ``3 min 04 s``, ``2 h 05 min``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def millis(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 1000 else f"{seconds:.2f} s"


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _figures(snap: Snapshot) -> Table:
    in_progress = sum(c.in_progress for c in snap.consumers)
    grid = Table.grid(padding=(0, 2))
    for justify in ("left", "right", "left", "right"):
        grid.add_column(justify=justify)
    claimed = f"{snap.claimed:,} / {in_progress:,}"
    left = [
        ("waiting (depth)", f"{snap.depth:,}"),
        ("oldest waiting", duration(snap.oldest_age)),
        ("claimed / in progress", claimed),
        ("retrying (delayed)", f"{snap.delayed:,}"),
        ("dead letters", f"{snap.dead:,}"),
        ("unfinished (join)", f"{snap.unfinished:,}"),
    ]
    right = [(f"total {name}", f"{snap.totals.get(name, 0):,}") for name in snapshot.TOTALS]
    for (k1, v1), (k2, v2) in zip(left, right, strict=True):
        grid.add_row(k1, Text(v1, style="bold"), k2, v2)
    if snap.orphaned:
        grid.add_row("orphaned (awaiting recovery)", Text(f"{snap.orphaned:,}", style="bold yellow"), "", "")
    return grid


def _throughput(history: History) -> RenderableType:
    put, done = history.rates()
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column(justify="right")
    grid.add_column(no_wrap=True, overflow="crop")
    grid.add_column(justify="right")
    for label, series, style in (("items in", put, "cyan"), ("items out", done, "green")):
        now = f"{series[-1]:,.1f}/s" if series else "-"
        peak = f"peak {max(series):,.0f}/s" if series else ""
        grid.add_row(label, now, Text(sparkline(series).rjust(SPARK_WIDTH), style=style), peak)
    recent = history.latency()
    figures = f"p50 {millis(recent.quantile(0.5))} · p99 {millis(recent.quantile(0.99))}" if recent.count else "-"
    latency = Text(f"latency (enqueue to start, last {WINDOW:.0f} s, {recent.count:,} items): {figures}")
    return Group(grid, latency)


def _consumers(snap: Snapshot) -> Table:
    table = Table(title=f"{len(snap.consumers)} live consumer(s)", title_justify="left", expand=False)
    table.add_column("host", overflow="ellipsis", max_width=20)
    for name in ("pid", "conc", "in prog", "claimed", "processed", "failed", "heartbeat", "p50", "p99"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in snap.consumers:
        table.add_row(
            c.host,
            str(c.pid),
            str(c.concurrency),
            f"{c.in_progress:,}",
            f"{c.claimed:,}",
            f"{c.processed:,}",
            f"{c.failed:,}",
            duration(c.heartbeat_age),
            millis(c.latency.quantile(0.5)),
            millis(c.latency.quantile(0.99)),
        )
    return table


def render_snapshot(snap: Snapshot, history: History | None = None, *, source: str = "") -> RenderableType:
    """The figures of one snapshot; with ``history``, throughput and the recent latency too."""
    where = f" at {source}" if source else ""
    header = Text.assemble(("asyncq", "bold"), f" queue {snap.queue!r}{where} · {_clock(snap.taken_at)}")
    parts: list[RenderableType] = [header, "", _figures(snap), ""]
    if history is not None:
        parts.append(_throughput(history))
    else:
        lat = snap.latency
        figures = f"p50 {millis(lat.quantile(0.5))} · p99 {millis(lat.quantile(0.99))}"
        parts.append(Text(f"enqueue-to-start latency of the live consumers: {figures}"))
    parts += ["", _consumers(snap)]
    return Group(*parts)


class _View:
    """Polls one queue; keeps the last snapshot and the outage, if any."""

    def __init__(self, url: str, queue: str, interval: float) -> None:
        self.source = redact(url)
        self.queue = queue
        self.interval = interval
        self.history = History()
        self.last: Snapshot | None = None
        self.down_since: float | None = None
        self.reason = ""

    async def poll(self, client: aioredis.Redis) -> None:
        try:
            async with asyncio.timeout(max(10.0, 2 * self.interval)):  # a guard: socket timeouts come first
                snap = await snapshot.take(client, self.queue)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.down_since is None:
                self.down_since = time.time()
            self.reason = (describe(exc) if str(exc) else type(exc).__name__).rstrip(".")
            return
        self.down_since = None
        self.last = snap
        self.history.add(snap)

    def settled(self) -> bool:
        """Do the consumers' heartbeats account for every item processed so far?"""
        last = self.last
        return last is not None and sum(c.processed for c in last.consumers) >= last.totals.get("processed", 0)

    def frame(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self.down_since is not None:
            since = time.time() - self.down_since
            parts.append(
                Text(
                    f"Redis unreachable since {_clock(self.down_since)} ({duration(since)}): {self.reason}; "
                    f"retrying every {self.interval:g} s",
                    style="bold red",
                )
            )
        if self.last is not None:
            parts.append(render_snapshot(self.last, self.history, source=self.source))
        elif self.down_since is None:
            parts.append(Text(f"asyncq: waiting for the first snapshot of {self.queue!r} at {self.source}"))
        return Group(*parts)


@contextlib.contextmanager
def _screen(console: Console, *, stream: bool) -> Iterator[Callable[[RenderableType], None]]:
    """A function that shows a frame: in place on a terminal (rich ``Live``; the last frame stays on screen).
    Elsewhere (a pipe, a file) every frame is printed in turn when ``stream`` (each followed by a rule), else
    only the last one."""
    if console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False, vertical_overflow="crop") as live:
            yield lambda frame: live.update(frame, refresh=True)
        return
    if stream:

        def show(frame: RenderableType) -> None:
            console.print(frame)
            console.rule()

        yield show
        return
    frames: list[RenderableType] = []
    try:
        yield frames.append
    finally:
        if frames:
            console.print(frames[-1])


async def _run(
    url: str, queue: str, interval: float, console: Console, until: asyncio.Event | None, tls: TLSOptions | None = None
) -> None:
    view = _View(url, queue, interval)
    stop = until or asyncio.Event()  # watch's is never set: Ctrl-C ends it
    client = connect(url, socket_timeout=5.0, max_connections=2, name="asyncq-watch", tls=tls)
    try:
        with _screen(console, stream=until is None) as show:
            while not stop.is_set():
                await view.poll(client)
                show(view.frame())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await stop.wait()
            # The end of a demo: let the consumers' heartbeats catch up with the totals, for the last frame.
            deadline = time.monotonic() + SETTLE
            await view.poll(client)
            while not view.settled() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                await view.poll(client)
            show(view.frame())
    finally:
        await client.aclose()


async def watch(url: str, queue: str, interval: float, console: Console, *, tls: TLSOptions | None = None) -> None:
    """Show the queue live, refreshed every ``interval`` seconds, until Ctrl-C (then return quietly).

    A Redis outage is shown on top of the last figures and retried every ``interval``: never fatal.
    """
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        await _run(url, queue, interval, console, None, tls)


async def monitor(url: str, queue: str, finished: asyncio.Event) -> None:
    """The live view for ``asyncq demo``: refreshed until ``finished`` is set, then one last frame is left."""
    await _run(url, queue, 0.5, Console(), finished)
