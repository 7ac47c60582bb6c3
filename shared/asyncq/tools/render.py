"""What ``asyncq stats`` prints and each frame of ``asyncq watch`` and ``asyncq demo``, fitted to the width.

Every figure comes from ``asyncq.tools.snapshot``: one snapshot per refresh. Throughput (items/s in and out) is the
change of the queue's ``enqueued`` and ``processed`` totals between snapshots; the recent latency is, per live
consumer, its published histogram now minus the same histogram at the start of the window.

A frame is laid out for the console's width when it is printed: the sparklines get what is left of the line,
and the consumers table drops whole columns (latencies first) rather than cut a pid or a count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from asyncq.core.histogram import Histogram
from asyncq.tools import snapshot
from asyncq.tools.layout import Column, fit
from asyncq.tools.snapshot import Snapshot

WINDOW = 60.0
BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
NARROW = 64  # below this width the figures stand in one column, not two


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


def quantiles(histogram: Histogram) -> str:
    """``p50 4.21 ms · p99 9.80 ms``, or a dash when no item was measured (0.00 ms would be a false figure)."""
    if not histogram.count:
        return "-"
    return f"p50 {millis(histogram.quantile(0.5))} · p99 {millis(histogram.quantile(0.99))}"


def clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _figures(snap: Snapshot, width: int) -> RenderableType:
    in_progress = sum(c.in_progress for c in snap.consumers)
    left = [
        ("waiting (depth)", f"{snap.depth:,}"),
        ("oldest waiting", duration(snap.oldest_age)),
        ("claimed / in progress", f"{snap.claimed:,} / {in_progress:,}"),
        ("scheduled", f"{snap.delayed:,}"),
        ("dead letters", f"{snap.dead:,}"),
        ("unfinished (join)", f"{snap.unfinished:,}"),
        ("kind", snap.kind + (f" · shut down ({snap.shutdown})" if snap.shutdown else "")),
    ]
    right = [(f"total {name}", f"{snap.totals.get(name, 0):,}") for name in snapshot.TOTALS]
    grid = Table.grid(padding=(0, 2))
    if width >= NARROW:
        for justify in ("left", "right", "left", "right"):
            grid.add_column(justify=justify, no_wrap=True)
        for (k1, v1), (k2, v2) in zip(left, right, strict=True):
            grid.add_row(k1, Text(v1, style="bold"), k2, v2)
    else:
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        for key, value in [*left, *right]:
            grid.add_row(key, Text(value, style="bold") if (key, value) in left else value)
    if not snap.orphaned:
        return grid
    orphaned = Text.assemble("orphaned (awaiting recovery)  ", (f"{snap.orphaned:,}", "bold yellow"))
    return Group(grid, orphaned)


def _throughput(history: History, width: int) -> RenderableType:
    put, done = history.rates()
    lines = []
    for label, series, style in (("items in ", put, "cyan"), ("items out", done, "green")):
        now = f"{series[-1]:,.1f}/s" if series else "-"
        peak = f"peak {max(series):,.0f}/s" if series else ""
        lines.append((label, now, series, style, peak))
    now_width = max(len(line[1]) for line in lines)
    peak_width = max(len(line[4]) for line in lines)
    room = width - len("items out") - now_width - peak_width - 6
    if room < 10:  # a narrow screen: the sparkline goes before the peak does
        room, peak_width = width - len("items out") - now_width - 4, 0
    spark = max(0, min(SPARK_WIDTH, room))
    parts: list[RenderableType] = []
    for label, now, series, style, peak in lines:
        row = Text.assemble(label, "  ", now.rjust(now_width))
        if spark:
            row.append("  ")
            row.append(sparkline(series, spark).rjust(spark), style=style)
        if peak_width:
            row.append("  " + peak)
        parts.append(row)
    recent = history.latency()
    parts.append(Text(f"latency {quantiles(recent)} (enqueue to start; {recent.count:,} items, last {WINDOW:.0f} s)"))
    return Group(*parts)


CONSUMER_COLUMNS = (
    Column("host", 1, "left", max_width=20),
    Column("pid", 0),
    Column("conc", 7),
    Column("in prog", 2),
    Column("claimed", 5),
    Column("processed", 3),
    Column("failed", 6),
    Column("heartbeat", 4),
    Column("p50", 8),
    Column("p99", 9),
)


def consumers_table(snap: Snapshot, width: int) -> Table:
    """One row per live consumer; at a narrow width the least telling columns are left out, never cut."""
    rows = [
        [
            c.host,
            str(c.pid),
            str(c.concurrency),
            f"{c.in_progress:,}",
            f"{c.claimed:,}",
            f"{c.processed:,}",
            f"{c.failed:,}",
            duration(c.heartbeat_age),
            millis(c.latency.quantile(0.5)) if c.latency.count else "-",
            millis(c.latency.quantile(0.99)) if c.latency.count else "-",
        ]
        for c in snap.consumers
    ]
    return fit(CONSUMER_COLUMNS, rows, width, title=f"{len(snap.consumers)} live consumer(s)")


class SnapshotView:
    """A rich renderable: the figures of one snapshot, laid out for the width it is printed at."""

    def __init__(self, snap: Snapshot, history: History | None = None, *, source: str = "") -> None:
        self.snap = snap
        self.history = history
        self.source = source

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.parts(options.max_width)

    def parts(self, width: int) -> Iterator[RenderableType]:
        snap = self.snap
        where = f" at {self.source}" if self.source else ""
        yield Text.assemble(("asyncq", "bold"), f" queue {snap.queue!r}{where} · {clock(snap.taken_at)}")
        yield ""
        yield _figures(snap, width)
        yield ""
        if self.history is not None:
            yield _throughput(self.history, width)
        else:
            yield Text(f"latency {quantiles(snap.latency)} (enqueue to start, live consumers)")
        yield ""
        yield consumers_table(snap, width)


def render_snapshot(snap: Snapshot, history: History | None = None, *, source: str = "") -> RenderableType:
    """The figures of one snapshot; with ``history``, throughput and the recent latency too."""
    return SnapshotView(snap, history, source=source)
