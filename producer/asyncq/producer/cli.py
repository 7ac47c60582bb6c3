"""producer: put N items on the queue from P producer coroutines, then (by default) wait until processed."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from asyncq.cli import options as opt
from asyncq.cli.logs import LogFormat, configure, report
from asyncq.cli.runner import opened, queue_name, run
from asyncq.core.connection import redact
from asyncq.producer.run import ProduceConfig, ProduceResult, produce

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    count: Annotated[int, typer.Option("--count", "-n", envvar="ASYNCQ_COUNT", min=0, help="Items to put.")] = 100,
    producers: Annotated[
        int, typer.Option("--producers", "-p", envvar="ASYNCQ_PRODUCERS", min=1, help="Producer coroutines.")
    ] = 5,
    rate: Annotated[
        float, typer.Option("--rate", envvar="ASYNCQ_RATE", min=0, help="Items per second overall (0: no cap).")
    ] = 0.0,
    size: Annotated[
        int, typer.Option("--size", envvar="ASYNCQ_SIZE", min=1, help="Payload size: hex characters per item.")
    ] = 10,
    batch: Annotated[
        int, typer.Option("--batch", envvar="ASYNCQ_BATCH", min=1, help="Items per put_many() of one producer.")
    ] = 100,
    queue: Annotated[
        str, typer.Option("--queue", envvar="ASYNCQ_QUEUE", callback=queue_name, help="Queue name.")
    ] = opt.DEFAULT_QUEUE,
    redis_url: opt.RedisUrl = opt.DEFAULT_URL,
    maxsize: Annotated[
        int,
        typer.Option(
            "--maxsize",
            envvar="ASYNCQ_MAXSIZE",
            min=0,
            help="Wait while the queue holds this many items (0: unbounded).",
        ),
    ] = 0,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            envvar="ASYNCQ_WAIT",
            help="Wait until consumers anywhere have processed everything (join).",
        ),
    ] = True,
    max_item_bytes: opt.MaxItemBytes = 1024 * 1024,
    verbose: opt.Verbose = False,
    log_format: opt.LogFormatOpt = LogFormat.text,
    tls_ca: opt.TlsCa = None,
    tls_cert: opt.TlsCert = None,
    tls_key: opt.TlsKey = None,
) -> None:
    """Put COUNT random hex items on the queue, like the seed's producers, and report the rate."""
    configure(verbose=verbose, fmt=log_format)
    config = ProduceConfig(count=count, producers=producers, rate=rate, size=size, batch=batch, wait=wait)
    tls = opt.tls_options(tls_ca, tls_cert, tls_key)

    async def go() -> ProduceResult:
        async with opened(queue, redis_url, tls, maxsize=maxsize, max_item_bytes=max_item_bytes) as q:
            if sys.stderr.isatty() and not verbose and log_format is LogFormat.text:
                with Progress(
                    TextColumn("[bold]producing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TaskProgressColumn(),
                    TextColumn("{task.fields[rate]} items/s"),
                    TimeRemainingColumn(),
                    transient=True,
                ) as bar:
                    task = bar.add_task("put", total=count, rate="-")

                    def advance(n: int) -> None:
                        bar.advance(task, n)
                        speed = bar.tasks[task].speed
                        bar.update(task, rate=f"{speed:,.0f}" if speed else "-")

                    return await produce(q, config, advance)
            return await produce(q, config)

    result = run(go(), url=redis_url)
    line = (
        f"produced {result.items} items in {result.seconds:.2f} s ({result.rate:,.0f} items/s) "
        f"to queue {queue} at {redact(redis_url)}"
    )
    if result.joined_after is not None:
        line += f"; all processed after {result.joined_after:.2f} s"
    report(line, items=result.items, seconds=result.seconds, joined_after=result.joined_after)
