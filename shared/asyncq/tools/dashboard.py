"""``asyncq watch`` and the live view of ``asyncq demo``: a snapshot per refresh, drawn by ``asyncq.tools.render``.

On a terminal the frame is redrawn in place (rich ``Live``); on a pipe or a file ``watch`` prints every frame
in turn, each followed by a rule, and the demo prints only its last frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from asyncq.core.connection import TLSOptions, connect
from asyncq.core.failures import describe
from asyncq.core.keys import Keys
from asyncq.core.urls import redact
from asyncq.tools import snapshot
from asyncq.tools.render import History, duration, render_snapshot
from asyncq.tools.render import clock as _clock
from asyncq.tools.snapshot import Snapshot

__all__ = ["monitor", "render_snapshot", "watch"]

SETTLE = 3.0  # longest wait at the end of a demo for the last heartbeats


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
    client = connect(url, key=Keys(queue).queue, socket_timeout=5.0, max_connections=2, name="asyncq-watch", tls=tls)
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


async def monitor(url: str, queue: str, finished: asyncio.Event, console: Console) -> None:
    """The live view for ``asyncq demo``: refreshed until ``finished`` is set, then one last frame is left.

    Lines the demo prints on ``console`` meanwhile appear above the live view."""
    await _run(url, queue, 0.5, console, finished)
