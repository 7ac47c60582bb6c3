"""producer: put N items on the queue from P producer coroutines, then (by default) wait until processed."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from asyncq.cli import options as opt
from asyncq.cli.connection import Connection, connection_options
from asyncq.cli.logs import LogFormat, configure, report
from asyncq.cli.runner import run, start_tracing
from asyncq.producer.run import ProduceConfig, ProduceResult, Waiting, produce

app = typer.Typer(add_completion=False, help=__doc__)


class WaitLines:
    """What the producer waits for, as plain lines on stderr (off a terminal, with -v, or JSON logs): one when
    waiting starts, one when consumers come or go, and one every ``every`` seconds while the count moves."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last: Waiting | None = None
        self.said_at = 0.0

    def __call__(self, state: Waiting) -> None:
        now = time.monotonic()
        last = self.last
        if last is not None and state.consumers == last.consumers:  # consumers coming or going: say so at once
            moved = state.unfinished != last.unfinished and now - self.said_at >= self.every
            if not moved:
                return
        self.last, self.said_at = state, now
        report(state.line(), err=True, unfinished=state.unfinished, consumers=state.consumers)


@app.command()
@connection_options(shards=True)
def main(
    count: Annotated[
        int, typer.Option("--count", "-n", envvar="ASYNCQ_COUNT", min=0, metavar="N", help="Items to put.")
    ] = 100,
    producers: Annotated[
        int,
        typer.Option("--producers", "-p", envvar="ASYNCQ_PRODUCERS", min=1, metavar="N", help="Producer coroutines."),
    ] = 5,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", envvar="ASYNCQ_RATE", min=0, metavar="ITEMS/S", help="Items per second overall (0: no cap)."
        ),
    ] = 0.0,
    size: Annotated[
        int,
        typer.Option(
            "--size", envvar="ASYNCQ_SIZE", min=1, metavar="CHARS", help="Payload size: hex characters per item."
        ),
    ] = 10,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            envvar="ASYNCQ_BATCH",
            min=1,
            metavar="N",
            help="Items each producer coroutine sends in one round trip.",
        ),
    ] = 100,
    maxsize: Annotated[
        int,
        typer.Option(
            "--maxsize",
            envvar="ASYNCQ_MAXSIZE",
            min=0,
            metavar="N",
            help="Wait while the queue holds this many items (0: unbounded).",
        ),
    ] = 0,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            envvar="ASYNCQ_WAIT",
            metavar="",
            help="Wait until consumers anywhere have processed everything (join), saying what it waits for; "
            "--no-wait: return once the items are in the queue.",
        ),
    ] = True,
    min_replicas: Annotated[
        int,
        typer.Option(
            "--min-replicas",
            envvar="ASYNCQ_MIN_REPLICAS",
            min=0,
            metavar="N",
            help="A put counts as done once N replicas hold it (WAIT after each batch): a failover then loses "
            "none. 0: once the master has it.",
        ),
    ] = 0,
    replica_timeout: Annotated[
        float,
        typer.Option(
            "--replica-timeout",
            envvar="ASYNCQ_REPLICA_TIMEOUT",
            min=0.001,
            metavar="SECONDS",
            help="How long one try waits for the replicas (--min-replicas); a shortfall is retried.",
        ),
    ] = 1.0,
    max_item_bytes: opt.MaxItemBytes = 1024 * 1024,
    verbose: opt.Verbose = False,
    log_format: opt.LogFormatOpt = LogFormat.text,
    *,
    conn: Connection,
) -> None:
    """Put COUNT items (random hex strings) on the queue, report the rate, and by default wait until they are
    processed."""
    configure(verbose=verbose, fmt=log_format)
    start_tracing("asyncq-producer")
    config = ProduceConfig(count=count, producers=producers, rate=rate, size=size, batch=batch, wait=wait)

    async def go() -> ProduceResult:
        async with conn.opened(
            maxsize=maxsize, max_item_bytes=max_item_bytes, min_replicas=min_replicas, replica_timeout=replica_timeout
        ) as q:
            if sys.stderr.isatty() and not verbose and log_format is LogFormat.text:
                with Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TaskProgressColumn(),
                    TextColumn("{task.fields[note]}"),
                    TimeRemainingColumn(),
                    transient=True,
                ) as bar:
                    put = bar.add_task("producing", total=count, note="- items/s")
                    processed: list[TaskID] = []

                    def advance(n: int) -> None:
                        bar.advance(put, n)
                        speed = bar.tasks[put].speed
                        bar.update(put, note=f"{speed:,.0f} items/s" if speed else "- items/s")

                    def waiting(state: Waiting) -> None:
                        if not processed:
                            processed.append(bar.add_task("processed", total=count, note=""))
                        bar.update(processed[0], completed=state.done, note=f"{state.unfinished:,} to go; {state.who}")

                    return await produce(q, config, advance, waiting)
            return await produce(q, config, waiting=WaitLines())

    result = run(go(), url=conn.url)
    line = (
        f"produced {result.items} items in {result.seconds:.2f} s ({result.rate:,.0f} items/s) "
        f"to queue {conn.queue} at {conn.shown}"
    )
    if result.joined_after is not None:
        line += f"; all processed after {result.joined_after:.2f} s"
    report(line, items=result.items, seconds=result.seconds, joined_after=result.joined_after)
