"""asyncq: the operator's CLI: run the demo, look at a queue, check health, handle dead letters."""

from __future__ import annotations

import json
import os
import socket
from typing import Annotated

import redis.asyncio as aioredis
import typer
from rich.console import Console

from asyncq.cli import options as opt
from asyncq.cli.logs import LogFormat, configure
from asyncq.cli.runner import fail, queue_name, run
from asyncq.core.connection import RedisUnavailable, TLSOptions, check_reachable, connect, redact
from asyncq.core.envelope import DeadLetter
from asyncq.tools import deadletters, snapshot
from asyncq.tools.demo import DemoConfig, redis_for_demo, run_demo
from asyncq.tools.layout import dead_letters_view

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
dead_app = typer.Typer(no_args_is_help=True, help="Inspect and recover dead letters.")
app.add_typer(dead_app, name="dead-letters")


@app.callback()
def _options(log_format: opt.LogFormatOpt = LogFormat.text) -> None:
    """asyncq: the operator's CLI. Options here go before the command: asyncq --log-format json stats."""
    configure(verbose=False, fmt=log_format)


Queue = Annotated[
    str, typer.Option("--queue", envvar="ASYNCQ_QUEUE", callback=queue_name, metavar="NAME", help="Queue name.")
]


async def _client(url: str, tls: TLSOptions | None = None) -> aioredis.Redis:
    client = connect(url, tls=tls)
    try:
        await check_reachable(client, url)
    except RedisUnavailable:
        await client.aclose()
        raise
    return client


@app.command()
def demo(
    producers: Annotated[int, typer.Option("--producers", "-p", min=1, metavar="N", help="Producer processes.")] = 2,
    consumers: Annotated[int, typer.Option("--consumers", "-c", min=1, metavar="N", help="Consumer processes.")] = 3,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, metavar="N", help="Coroutines per consumer (4; --quick: 10)."),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", "-n", min=1, metavar="N", help="Items (450; --quick: 300).")
    ] = None,
    work: Annotated[
        str | None,
        typer.Option(
            "--work",
            metavar="SECONDS|MIN-MAX",
            help="Work per item: a sleep of SECONDS, or between MIN and MAX (0.1-0.5; --quick: 0-0.1).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0, metavar="ITEMS/S", help="Items/s in all, 0: no cap (30; --quick: 0)."),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="The short run: no kill, no failures.")] = False,
    queue: Queue = "asyncq-demo",
    verbose: opt.Verbose = False,
) -> None:
    """Run P producer and C consumer processes through one Redis and tell what happens: the work shared, a
    consumer killed and its items recovered, a retry, a dead letter, join() returning in the producers.

    Uses REDIS_URL when set; otherwise starts a private redis-server on a free loopback port.
    """
    given = {"concurrency": concurrency, "count": count, "work": work, "rate": rate}
    config = DemoConfig.preset(
        quick=quick, producers=producers, consumers=consumers, queue=queue, verbose=verbose, **given
    )
    console = Console()
    url = os.environ.get("REDIS_URL")

    async def go() -> int:
        async with redis_for_demo(url) as redis_url:
            client = await _client(redis_url)
            await client.aclose()
            from asyncq.tools.dashboard import monitor

            return await run_demo(config, redis_url, console, None if verbose else monitor)

    code = run(go(), url=url or "")
    raise typer.Exit(code)


@app.command()
def stats(
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="One JSON object, for scripts.")] = False,
) -> None:
    """One snapshot of the queue: depth, ages, consumers, retries, dead letters, counters."""

    async def go() -> snapshot.Snapshot:
        client = await _client(redis_url)
        try:
            return await snapshot.take(client, queue)
        finally:
            await client.aclose()

    snap = run(go(), url=redis_url)
    if as_json:
        typer.echo(json.dumps(snap.to_json()))
        return
    from asyncq.tools.dashboard import render_snapshot

    Console().print(render_snapshot(snap, source=redact(redis_url)))


@app.command()
def watch(
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, metavar="SECONDS", help="Seconds between refreshes.")
    ] = 1.0,
) -> None:
    """A live dashboard of the queue, refreshed every second; Ctrl-C to leave.

    Redis must answer at start (else exit 1, like stats); after that an outage is shown and waited out.
    """
    from asyncq.tools.dashboard import watch as watch_queue

    async def go() -> None:
        client = await _client(redis_url)
        await client.aclose()
        await watch_queue(redis_url, queue, interval, Console())

    run(go(), url=redis_url)


@app.command()
def health(
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", metavar="HOST", show_default="this host's name", help="Host name of the consumer to look for."
        ),
    ] = None,
    consumer: Annotated[
        str | None, typer.Option("--consumer", metavar="ID", help="A consumer id to look for (overrides --host).")
    ] = None,
) -> None:
    """Exit 0 if Redis answers and a consumer of this host (or --consumer) has a live heartbeat; else 1."""
    wanted_host = host or socket.gethostname()

    async def go() -> str | None:
        client = await _client(redis_url)
        try:
            snap = await snapshot.take(client, queue)
        finally:
            await client.aclose()
        for view in snap.consumers:
            if view.id == consumer or (consumer is None and view.host == wanted_host):
                return view.id
        return None

    found = run(go(), url=redis_url)
    if found is None:
        raise fail(f"no live consumer {consumer or 'on host ' + wanted_host} for queue {queue}")
    typer.echo(f"ok: consumer {found} is alive")


@dead_app.command("list")
def dead_list(
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    limit: Annotated[int, typer.Option("--limit", min=0, metavar="N", help="Newest N only (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="JSON lines, for scripts.")] = False,
) -> None:
    """List dead letters, newest first: id, time, reason and the item's payload."""

    async def go() -> list[DeadLetter | bytes]:
        client = await _client(redis_url)
        try:
            return await deadletters.read(client, queue, limit)
        finally:
            await client.aclose()

    letters = run(go(), url=redis_url)
    if as_json:
        for letter in letters:
            if isinstance(letter, DeadLetter):
                record = {k: getattr(letter, k) for k in ("id", "reason", "failed_at", "consumer", "envelope")}
            else:
                record = {"unreadable": letter.decode("utf-8", "replace")}
            typer.echo(json.dumps(record))
        return
    Console().print(dead_letters_view(queue, letters))


@dead_app.command("requeue")
def dead_requeue(
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID...", help="Ids of the dead letters to requeue.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", metavar="", help="Requeue every dead letter.")] = False,
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
) -> None:
    """Put dead letters back at the end of the line with their attempts reset."""
    if not all_ and not ids:
        raise typer.BadParameter("name the ids to requeue, or pass --all")

    async def go() -> deadletters.RequeueResult:
        client = await _client(redis_url)
        try:
            return await deadletters.requeue(client, queue, None if all_ else ids)
        finally:
            await client.aclose()

    result = run(go(), url=redis_url)
    typer.echo(f"requeued {len(result.requeued)} item(s)")
    if result.not_envelopes:
        typer.echo(f"not requeued (not asyncq items; purge them): {' '.join(result.not_envelopes)}", err=True)
    if result.not_found:
        raise fail(f"no dead letter with id: {' '.join(result.not_found)}")


@dead_app.command("purge")
def dead_purge(
    queue: Queue = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    yes: Annotated[bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every dead letter of the queue."""
    if not yes and not typer.confirm(f"Delete every dead letter of queue {queue}?"):
        raise typer.Exit(1)

    async def go() -> int:
        client = await _client(redis_url)
        try:
            return await deadletters.purge(client, queue)
        finally:
            await client.aclose()

    typer.echo(f"purged {run(go(), url=redis_url)} dead letter(s)")
