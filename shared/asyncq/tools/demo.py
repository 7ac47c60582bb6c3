"""``asyncq demo``: producers and consumers as separate OS processes through one Redis, and what asyncq
promises, shown as it happens (about 20 s): the consumers share the work; one of them is SIGKILLed mid-run
and its items come back within seconds; an item that fails once is retried; a poison item ends in the dead
letters; ``join()`` returns in each producer process once everything is done. ``--quick`` is the short run:
no kill, no failures.

With no ``REDIS_URL`` it starts a private ``redis-server`` on a free loopback port and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.text import Text

from asyncq.core.connection import connect
from asyncq.core.urls import redact
from asyncq.tools import demo_report, demo_story, demo_work, snapshot
from asyncq.tools.demo_report import plural
from asyncq.tools.embedded import EmbeddedRedis

FAIL_ONCE, POISON = 3, 4  # early items: done with long before the kill, so their story stays simple
MAX_DELIVERIES = 3
STARTUP = 30.0  # seconds for the consumers to come up


@dataclass(frozen=True)
class DemoConfig:
    producers: int = 2
    consumers: int = 3
    concurrency: int = 4
    count: int = 450
    work: str = "0.1-0.5"
    rate: float = 30.0
    queue: str = "asyncq-demo"
    verbose: bool = False
    quick: bool = False

    @classmethod
    def preset(cls, *, quick: bool = False, **given: Any) -> DemoConfig:
        """The story's settings (or the quick run's), with the options given (not None) applied."""
        base = cls(concurrency=10, count=300, work="0-0.1", rate=0.0, quick=True) if quick else cls()
        return replace(base, **{k: v for k, v in given.items() if v is not None})


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


async def _spawn(args: list[str], url: str, config: DemoConfig, *, events: bool) -> asyncio.subprocess.Process:
    """A child process; its logs are kept (shown if it fails) unless ``config.verbose``, which shows them all.
    A producer's stdout (``events``) carries its JSON lines for the story."""
    env = {**os.environ, "REDIS_URL": url, "ASYNCQ_QUEUE": config.queue, "PYTHONUNBUFFERED": "1"}
    kept = None if config.verbose else asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE if events else kept,
        stderr=kept,
        stdin=asyncio.subprocess.DEVNULL,
    )


Monitor = Callable[[str, str, asyncio.Event, Console], Coroutine[Any, Any, None]]


async def _consumers_up(client: aioredis.Redis, config: DemoConfig, consumers: list[demo_story.Child]) -> bool:
    """Wait until every consumer's heartbeat is in Redis; note each one's id."""
    deadline = asyncio.get_running_loop().time() + STARTUP
    while asyncio.get_running_loop().time() < deadline:
        by_pid = {c.pid: c.id for c in (await snapshot.take(client, config.queue)).consumers}
        if all(c.proc.pid in by_pid for c in consumers):
            for c in consumers:
                c.consumer_id = by_pid[c.proc.pid]
            return True
        if any(c.proc.returncode is not None for c in consumers):
            return False
        await asyncio.sleep(0.1)  # startup only: heartbeats have no notification
    return False


async def run_demo(config: DemoConfig, url: str, console: Console, monitor: Monitor | None = None) -> int:
    """Run the processes, tell the story, print the final table and figures. Returns the exit code."""
    try:
        demo_work.parse_work(config.work)
    except ValueError as exc:
        Console(stderr=True).print(Text(f"error: --work: {exc}"))
        return 2
    console.print(Text.assemble(("asyncq demo", "bold"), f": Redis at {redact(url)}, queue {config.queue!r}"))
    client = connect(url, key=demo_work.processed_key(config.queue), name="asyncq-demo")
    # SIGTERM to the demo ends it like Ctrl-C does, through the finally blocks: no child process is left behind.
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await _run(config, url, console, monitor, client)
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        return 128 + signal.SIGTERM
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await client.aclose()


async def _run(config: DemoConfig, url: str, console: Console, monitor: Monitor | None, client: aioredis.Redis) -> int:
    await demo_work.reset(client, config.queue)
    children: list[demo_story.Child] = []
    with tempfile.TemporaryDirectory(prefix="asyncq-demo-") as tmp:
        try:
            return await _story(config, url, console, monitor, client, Path(tmp), children)
        finally:
            for child in children:  # after a failure of the demo itself (e.g. Redis gone): leave no process behind
                if child.proc.returncode is None:
                    child.proc.kill()
                    await child.proc.wait()


async def _story(
    config: DemoConfig,
    url: str,
    console: Console,
    monitor: Monitor | None,
    client: aioredis.Redis,
    tmp: Path,
    children: list[demo_story.Child],
) -> int:
    say = demo_story.Narrator(console)
    summaries = [tmp / f"consumer-{n}.json" for n in range(config.consumers)]
    consumers = [
        demo_story.Child("consumer", n + 1, await _spawn(_consumer_args(config, path), url, config, events=False))
        for n, path in enumerate(summaries)
    ]
    children += consumers
    for c in consumers:
        c.output = asyncio.create_task(c.proc.communicate())
    if not await _consumers_up(client, config, consumers):
        return await demo_report.failed(console, consumers, f"not every consumer started (within {STARTUP:.0f} s)")
    say.say(f"{plural(config.consumers, 'consumer')} up ({_pids(consumers)}), heartbeat every 1 s")
    failures = not config.quick and config.count >= POISON
    plot = demo_story.Plot(
        config.queue,
        config.count,
        FAIL_ONCE if failures else 0,
        POISON if failures else 0,
        not config.quick,
        MAX_DELIVERIES,
    )
    if failures:
        say.say(f"plan: item {FAIL_ONCE} fails once; item {POISON} always fails ({MAX_DELIVERIES} deliveries)")
    if not config.quick and len(consumers) > 1:
        victim = consumers[len(consumers) // 2]
        plot.victim = demo_story.Victim(victim.consumer_id, victim.number, victim.proc.pid or 0)
        say.say("plan: a consumer is SIGKILLed once a third of the items are done")
    producers = [
        demo_story.Child("producer", n + 1, await _spawn(_producer_args(config, n), url, config, events=True))
        for n in range(config.producers)
    ]
    children += producers
    rate = f" at {config.rate:g} items/s" if config.rate else ""
    say.say(f"{plural(config.producers, 'producer')} ({_pids(producers)}) put {config.count} numbered items{rate}")
    finished = asyncio.Event()
    watcher = asyncio.create_task(monitor(url, config.queue, finished, console)) if monitor else None
    story = asyncio.create_task(demo_story.follow(client, plot, say, finished))
    reading: asyncio.Future[list[bytes]] = asyncio.gather(*(demo_story.read_events(p, say) for p in producers))
    # The narrator fails only if Redis does (the live view rides out an outage): then the demo ends, not hangs.
    either: list[asyncio.Future[Any]] = [reading, story]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if story.done():
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        story.result()  # raises the narrator's error
    errors = await reading
    elapsed = say.elapsed()
    finished.set()
    await story
    if watcher is not None:
        await watcher
    for c in consumers:
        if c.proc.returncode is None:
            c.proc.send_signal(signal.SIGTERM)
    outputs = [await c.output for c in consumers if c.output is not None]
    put = [e["items"] for p in producers for e in p.events if e["event"] == "put"]
    numbers = range(1, config.count + 1) if sum(put) == config.count else range(0)
    figures = await demo_report.figures(client, config.queue, numbers)
    console.print(
        demo_report.table(config, consumers, [demo_report.load(p) for p in summaries], plot.victim, console.width)
    )
    demo_report.closing(console, config, figures, elapsed, producers, plot.victim)
    victim_pid = plot.victim.pid if plot.victim and plot.victim.killed_at is not None else None
    broken = [
        (c, err)
        for c, (_, err) in zip([*consumers, *producers], [*outputs, *((b"", e) for e in errors)], strict=True)
        if c.proc.returncode != 0 and c.proc.pid != victim_pid
    ]
    for child, err in broken:
        demo_report.show_log(console, child, err)
    return 1 if broken or figures.lost or figures.items != config.count else 0


def _pids(children: list[demo_story.Child]) -> str:
    return ("pids " if len(children) > 1 else "pid ") + ", ".join(str(c.proc.pid) for c in children)


def _consumer_args(config: DemoConfig, summary: Path) -> list[str]:
    args = ["-m", "asyncq.consumer", "--queue", config.queue, "--concurrency", str(config.concurrency)]
    args += ["--summary-file", str(summary), "--heartbeat", "1", "--grace", "5"]  # 1 s: a killed one is seen in 3
    if config.verbose:
        args.append("-v")
    # The handler sleeps as each item says (its --work) and records it as processed: how "lost" is computed.
    args += ["--handler", "asyncq.tools.demo_work:handle", "--max-deliveries", str(MAX_DELIVERIES)]
    return [*args, "--retry-base", "0.2"]


def _producer_args(config: DemoConfig, n: int) -> list[str]:
    args = ["-m", "asyncq.tools.demo_work", "--producer", str(n), "--producers", str(config.producers)]
    args += ["--count", str(config.count), "--queue", config.queue, "--work", config.work]
    args += ["--rate", str(config.rate / config.producers)]
    if not config.quick and config.count >= POISON:
        args += ["--fail-once", str(FAIL_ONCE), "--poison", str(POISON)]
    return args
