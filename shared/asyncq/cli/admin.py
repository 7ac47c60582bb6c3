"""asyncq: the operator's CLI: run the demo, look at a queue, check health, handle dead letters."""

from __future__ import annotations

import json
import os
import socket
from typing import Annotated

import typer
from rich.console import Console

from asyncq.cli import options as opt
from asyncq.cli.connection import Connection, QueueName, connection_options
from asyncq.cli.dead_letters import dead_letters_app
from asyncq.cli.logs import LogFormat, configure
from asyncq.cli.runner import fail, run
from asyncq.cli.web import web
from asyncq.core.connection import TLSOptions
from asyncq.tools import snapshot
from asyncq.tools.demo import DemoConfig, redis_for_demo, run_demo

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(dead_letters_app, name="dead-letters")
app.command("web")(web)


@app.callback()
def _options(log_format: opt.LogFormatOpt = LogFormat.text) -> None:
    """asyncq: the operator's CLI. Options here go before the command: asyncq --log-format json stats."""
    configure(verbose=False, fmt=log_format)


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
    queue: QueueName = "asyncq-demo",
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
            client = await Connection(queue, redis_url, TLSOptions()).client()
            await client.aclose()
            from asyncq.tools.dashboard import monitor

            return await run_demo(config, redis_url, console, None if verbose else monitor)

    code = run(go(), url=url or "")
    raise typer.Exit(code)


@app.command()
@connection_options()
def stats(
    conn: Connection,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="One JSON object, for scripts.")] = False,
) -> None:
    """One snapshot of the queue: depth, ages, consumers, retries, dead letters, counters."""

    async def go() -> snapshot.Snapshot:
        client = await conn.client()
        try:
            return await snapshot.take(client, conn.queue)
        finally:
            await client.aclose()

    snap = run(go(), url=conn.url)
    if as_json:
        typer.echo(json.dumps(snap.to_json()))
        return
    from asyncq.tools.dashboard import render_snapshot

    Console().print(render_snapshot(snap, source=conn.shown))


@app.command()
@connection_options()
def watch(
    conn: Connection,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, metavar="SECONDS", help="Seconds between refreshes.")
    ] = 1.0,
) -> None:
    """A live dashboard of the queue, refreshed every second; Ctrl-C to leave.

    Redis must answer at start (else exit 1, like stats); after that an outage is shown and waited out.
    """
    from asyncq.tools.dashboard import watch as watch_queue

    async def go() -> None:
        client = await conn.client()
        await client.aclose()
        await watch_queue(conn.url, conn.queue, interval, Console(), tls=conn.tls)

    run(go(), url=conn.url)


@app.command()
@connection_options()
def health(
    conn: Connection,
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
        client = await conn.client()
        try:
            snap = await snapshot.take(client, conn.queue)
        finally:
            await client.aclose()
        for view in snap.consumers:
            if view.id == consumer or (consumer is None and view.host == wanted_host):
                return view.id
        return None

    found = run(go(), url=conn.url)
    if found is None:
        raise fail(f"no live consumer {consumer or 'on host ' + wanted_host} for queue {conn.queue}")
    typer.echo(f"ok: consumer {found} is alive")
