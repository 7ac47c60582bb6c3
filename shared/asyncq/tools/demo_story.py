"""What ``asyncq demo`` tells as it happens, read back from Redis (its closing figures: ``demo_report``).

The narrator watches the queue's counters, the demo handler's records and the dead letters; it SIGKILLs one
consumer once a third of the items are processed (and it holds some), then reports when that consumer's
processing hash and list are empty again: its items were recovered by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.text import Text

from asyncq.core.envelope import BadEnvelope, DeadLetter, decode
from asyncq.core.keys import Keys
from asyncq.tools import demo_work

POLL = 0.2  # seconds between the narrator's looks at Redis (a display, like the dashboard's refresh)


class Narrator:
    """Story lines with the time since the start: plain lines, readable on a terminal and piped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, text: str) -> None:
        # Wrapped by hand with a hanging indent, so the times stay a column of their own at any width.
        lines = textwrap.wrap(
            f"{self.elapsed():5.1f} s  {text}", width=max(20, self.console.width), subsequent_indent=" " * 9
        )
        for line in lines:
            self.console.print(Text(line), soft_wrap=True)


@dataclass
class Child:
    """A producer or consumer process of the demo; a producer's JSON events as they came."""

    role: str
    number: int
    proc: asyncio.subprocess.Process
    output: asyncio.Task[tuple[bytes, bytes]] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    consumer_id: str = ""


@dataclass
class Victim:
    """The consumer the demo kills: its id, pid, and what it held and had done when it died."""

    consumer_id: str
    number: int
    pid: int
    held: int = 0
    processed: int = 0
    killed_at: float | None = None
    back_after: float | None = None
    recovered: int = 0


@dataclass
class Plot:
    queue: str
    count: int
    fail_once: int
    poison: int
    kill: bool
    max_deliveries: int
    victim: Victim | None = None
    failures: dict[str, int] = field(default_factory=dict)
    dead_seen: int = 0
    once_done: bool = False


def _processed(heartbeat: bytes | None) -> int:
    """The processed count in a consumer's heartbeat (its last one before the kill)."""
    try:
        return int(json.loads(heartbeat or b"{}").get("processed", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


async def follow(client: aioredis.Redis, plot: Plot, say: Narrator, finished: asyncio.Event) -> None:
    """Narrate failures, dead letters, the kill and the recovery until ``finished`` is set."""
    keys = Keys(plot.queue)
    recovered_before = 0
    while not finished.is_set():
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.totals)
        pipe.hgetall(demo_work.failures_key(plot.queue))
        pipe.llen(keys.dead)
        pipe.hget(demo_work.processed_key(plot.queue), str(plot.fail_once))
        victim = plot.victim
        if victim is not None:
            pipe.llen(keys.processing(victim.consumer_id))
            pipe.hlen(keys.held(victim.consumer_id))
            pipe.get(keys.heartbeat(victim.consumer_id))
        raw_totals, raw_failures, dead, once_done, *held_beat = await pipe.execute()
        listed, hashed, beat = held_beat if held_beat else (0, 0, None)
        held = listed + hashed
        totals = counts(raw_totals)
        for raw_n, raw_k in sorted(raw_failures.items()):
            n, k = raw_n.decode(), int(raw_k)
            for delivery in range(plot.failures.get(n, 0) + 1, k + 1):
                what = "poison" if n == str(plot.poison) else "on purpose"
                then = "retry with backoff" if delivery < plot.max_deliveries else "no retry left"
                say.say(f"item {n} failed (delivery {delivery} of {plot.max_deliveries}, {what}): {then}")
            plot.failures[n] = k
        if once_done and not plot.once_done and plot.failures.get(str(plot.fail_once)):
            plot.once_done = True
            say.say(f"item {plot.fail_once} done after its retry")
        if dead > plot.dead_seen:
            for letter in await client.lrange(keys.dead, 0, dead - plot.dead_seen - 1):
                say.say(describe_dead(letter))
            plot.dead_seen = dead
        if victim is not None and victim.killed_at is None and plot.kill:
            if totals.get("processed", 0) >= plot.count // 3 and held > 0:
                recovered_before = totals.get("recovered", 0)
                victim.held = held
                victim.processed = _processed(beat)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.pid, signal.SIGKILL)
                victim.killed_at = say.elapsed()
                say.say(f"SIGKILL consumer {victim.number} (pid {victim.pid}) holding {held} unacknowledged items")
        elif victim is not None and victim.killed_at is not None and victim.back_after is None and held == 0:
            victim.back_after = say.elapsed() - victim.killed_at
            victim.recovered = totals.get("recovered", 0) - recovered_before
            say.say(f"its {victim.recovered} items are back after {victim.back_after:.1f} s: its heartbeat expired")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL):
                await finished.wait()


def describe_dead(raw: bytes | str) -> str:
    """``item 4 dead-lettered: reason`` for a dead-letter record of the demo."""
    try:
        letter = DeadLetter.parse(raw if isinstance(raw, bytes) else raw.encode())
    except BadEnvelope:
        return "a dead letter that is not one of asyncq's records"
    return f"item {item_number(letter) or letter.id} dead-lettered: {letter.reason}"


def item_number(letter: DeadLetter) -> str | None:
    try:
        payload = decode(letter.envelope.encode()).payload
    except BadEnvelope:
        return None
    return str(payload["n"]) if isinstance(payload, dict) and "n" in payload else None


def counts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    """A hash of counters as {name: value}."""
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


async def read_events(child: Child, say: Narrator) -> bytes:
    """A producer's JSON lines, told as they come; returns its stderr."""
    assert child.proc.stdout is not None
    async for line in child.proc.stdout:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            child.events.append(event)
            pid = child.proc.pid
            if event["event"] == "put":
                say.say(f"producer {child.number} (pid {pid}) put its {event['items']} items, waits in join()")
            elif event["event"] == "joined":
                say.say(f"join() returned in producer {child.number} (pid {pid}): every item is done")
    err = await child.proc.stderr.read() if child.proc.stderr else b""
    await child.proc.wait()
    return err
