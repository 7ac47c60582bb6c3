"""The end of ``asyncq demo``: the consumers table and the closing figures, computed from Redis.

"lost" counts the items put that are neither recorded as processed by the demo handler nor in the dead
letters; "processed twice" the items finished again after a redelivery (at least once, never lost).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from asyncq.core.envelope import BadEnvelope, DeadLetter
from asyncq.core.keys import Keys
from asyncq.tools import demo_work
from asyncq.tools.demo_story import Child, Victim, counts, item_number
from asyncq.tools.layout import Column, fit
from asyncq.tools.render import millis

if TYPE_CHECKING:
    from asyncq.tools.demo import DemoConfig


@dataclass(frozen=True)
class Figures:
    items: int
    processed: int
    twice: int
    recovered: int
    retried: int
    dead: int
    lost: int

    def lines(self) -> list[str]:
        return [
            f"items {self.items} · processed {self.processed} · dead {self.dead} · lost {self.lost}",
            f"recovered {self.recovered} · retried {self.retried}",
        ]


async def figures(client: aioredis.Redis, queue: str, put: Sequence[int]) -> Figures:
    """The closing figures: what Redis and the handler's records say about the items ``put``."""
    keys = Keys(queue)
    totals = counts(await client.hgetall(keys.totals))
    times = counts(await client.hgetall(demo_work.processed_key(queue)))
    dead = {n for raw in await client.lrange(keys.dead, 0, -1) if (n := _dead_number(raw)) is not None}
    wanted = {str(n) for n in put}
    lost = wanted - set(times) - dead
    return Figures(
        items=len(wanted),
        processed=len(wanted & set(times)),
        twice=sum(1 for n, k in times.items() if n in wanted and k > 1),
        recovered=totals.get("recovered", 0),
        retried=totals.get("retried", 0),
        dead=len(dead & wanted),
        lost=len(lost),
    )


def _dead_number(raw: bytes | str) -> str | None:
    try:
        return item_number(DeadLetter.parse(raw if isinstance(raw, bytes) else raw.encode()))
    except BadEnvelope:
        return None


def load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


COLUMNS = (
    Column("consumer", 0, "left"),
    Column("pid", 1),
    Column("items", 0),
    Column("failed", 3),
    Column("items/s", 4),
    Column("p50", 5),
    Column("p99", 6),
    Column("end", 2, "left"),
)


def table(
    config: DemoConfig,
    consumers: list[Child],
    summaries: list[dict[str, Any]],
    victim: Victim | None,
    width: int,
) -> Table:
    rows = []
    for child, summary in zip(consumers, summaries, strict=True):
        if victim is not None and child.proc.pid == victim.pid and victim.killed_at is not None:
            # Its last heartbeat's count: what it finished, at least, before it was killed.
            at_least = f"≥{victim.processed:,}"
            rows.append([str(child.number), str(child.proc.pid), at_least, "-", "-", "-", "-", "SIGKILL"])
            continue
        latency = summary.get("latency_ms", {})
        done = int(summary.get("processed", 0))
        rows.append(
            [
                str(child.number),
                str(child.proc.pid),
                f"{done:,}",
                f"{summary.get('failed', 0):,}",
                f"{summary.get('items_per_second', 0):,.0f}",
                millis(latency.get("p50", 0) / 1000) if done else "-",
                millis(latency.get("p99", 0) / 1000) if done else "-",
                f"exit {child.proc.returncode}",
            ]
        )
    return fit(COLUMNS, rows, width, title="consumers (latency: enqueue to start)")


def closing(
    console: Console,
    config: DemoConfig,
    figures: Figures,
    elapsed: float,
    producers: list[Child],
    victim: Victim | None,
) -> None:
    joined = sum(1 for p in producers for e in p.events if e["event"] == "joined")
    killed = " (1 killed)" if victim is not None and victim.killed_at is not None else ""
    lines = [
        f"{config.count} items, {plural(config.producers, 'producer')}, "
        f"{plural(config.consumers, 'consumer')}{killed}: {elapsed:.1f} s end to end",
        f"join() returned in {joined} of {config.producers} producer processes",
        *figures.lines(),
    ]
    if victim is not None and victim.back_after is not None:
        lines.append(f"the killed consumer's {victim.recovered} items came back after {victim.back_after:.1f} s")
    if figures.twice:
        lines.append(f"processed twice: {figures.twice} (killed before their ack: at least once, never lost)")
    for line in lines:
        console.print(Text(line))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


async def failed(console: Console, children: list[Child], why: str) -> int:
    console.print(Text(f"demo failed: {why}"))
    for c in children:
        if c.proc.returncode is None:
            c.proc.kill()
        _, err = await c.output if c.output is not None else (b"", b"")
        show_log(console, c, err)
    return 1


def show_log(console: Console, child: Child, err: bytes | None) -> None:
    console.print(Text(f"{child.role} {child.number} (pid {child.proc.pid}) exited {child.proc.returncode}:"))
    if err:  # None with --verbose: the log is already on screen
        console.print(Text(err.decode("utf-8", "replace").rstrip()), soft_wrap=True)
