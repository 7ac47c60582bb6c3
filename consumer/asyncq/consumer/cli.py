"""consumer: take items from the queue with C coroutines until stopped (SIGTERM/SIGINT) or drained."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from asyncq.cli import options as opt
from asyncq.cli.connection import Connection, connection_options
from asyncq.cli.lifecycle import stop_on_signals
from asyncq.cli.logs import LogFormat, configure, report
from asyncq.cli.runner import fail, run, start_tracing
from asyncq.consumer.handlers import Handler, Work, load
from asyncq.consumer.metrics import Metrics, serve_metrics
from asyncq.consumer.worker import ConsumeConfig, Consumer, Summary
from asyncq.core.retries import RetryPolicy

app = typer.Typer(add_completion=False, help=__doc__)


def _work(value: str) -> str:
    try:
        Work.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command()
@connection_options(shards=True)
def main(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", envvar="ASYNCQ_CONCURRENCY", min=1, metavar="N", help="Consumer coroutines."
        ),
    ] = 10,
    work: Annotated[
        str,
        typer.Option(
            "--work",
            envvar="ASYNCQ_WORK",
            callback=_work,
            metavar="SECONDS|MIN-MAX",
            help="Simulated work per item: a random sleep of SECONDS, or between MIN and MAX seconds (0: none).",
        ),
    ] = "0-1",
    handler: Annotated[
        str | None,
        typer.Option(
            "--handler",
            envvar="ASYNCQ_HANDLER",
            metavar="MODULE:FUNCTION",
            help="Call this function with each item instead of --work: async, or plain (run in a thread). "
            "MODULE is looked up in the current directory first, then on the Python path.",
        ),
    ] = None,
    drain: Annotated[
        bool,
        typer.Option("--drain", envvar="ASYNCQ_DRAIN", metavar="", help="Exit once the queue is empty and joined."),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            envvar="ASYNCQ_GRACE",
            min=0,
            metavar="SECONDS",
            help="Seconds to finish items in progress after SIGTERM/SIGINT.",
        ),
    ] = 10.0,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            envvar="ASYNCQ_TIMEOUT",
            min=0,
            metavar="SECONDS",
            show_default="no limit",
            help="Seconds one handler call may take before it counts as failed.",
        ),
    ] = None,
    max_deliveries: Annotated[
        int,
        typer.Option(
            "--max-deliveries",
            envvar="ASYNCQ_MAX_DELIVERIES",
            min=1,
            metavar="N",
            help="Deliveries of an item before it goes to the dead letters.",
        ),
    ] = 5,
    retry_base: Annotated[
        float,
        typer.Option(
            "--retry-base",
            envvar="ASYNCQ_RETRY_BASE",
            min=0,
            metavar="SECONDS",
            help="First retry delay in seconds; doubles each time, with jitter.",
        ),
    ] = 1.0,
    retry_cap: Annotated[
        float,
        typer.Option(
            "--retry-cap", envvar="ASYNCQ_RETRY_CAP", min=0, metavar="SECONDS", help="Longest retry delay in seconds."
        ),
    ] = 60.0,
    prefetch: Annotated[
        int | None,
        typer.Option(
            "--prefetch",
            envvar="ASYNCQ_PREFETCH",
            min=0,
            metavar="N",
            show_default="adapts to the backlog",
            help="Items claimed beyond those being handled. Default: grows while handlers wait on Redis.",
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat",
            envvar="ASYNCQ_HEARTBEAT",
            min=0.1,
            metavar="SECONDS",
            help="Heartbeat interval in seconds; a consumer silent for 3 intervals is presumed dead "
            "and its items are redelivered.",
        ),
    ] = 2.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="ASYNCQ_METRICS_PORT",
            min=1,
            max=65535,
            metavar="PORT",
            help="Serve Prometheus /metrics and /healthz on this port.",
        ),
    ] = None,
    summary_file: Annotated[
        Path | None,
        typer.Option(
            "--summary-file",
            envvar="ASYNCQ_SUMMARY_FILE",
            metavar="FILE",
            help="Also write the final summary as JSON to this file.",
        ),
    ] = None,
    max_item_bytes: opt.MaxItemBytes = 1024 * 1024,
    verbose: opt.Verbose = False,
    log_format: opt.LogFormatOpt = LogFormat.text,
    *,
    conn: Connection,
) -> None:
    """Take items from the queue and handle each (a random sleep by default, or --handler); a line per item
    with -v, a summary at the end."""
    configure(verbose=verbose, fmt=log_format)
    start_tracing("asyncq-consumer")
    try:
        work_fn: Handler = load(handler) if handler else Work.parse(work)
    except ValueError as exc:
        raise fail(f"--handler: {exc}", code=2) from None
    config = ConsumeConfig(concurrency=concurrency, drain=drain, grace=grace, timeout=timeout)
    try:
        retry = RetryPolicy(max_deliveries, retry_base, retry_cap)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None

    async def go() -> Summary:
        stop = asyncio.Event()
        stop_on_signals(stop)
        async with conn.opened(
            prefetch="auto" if prefetch is None else prefetch,
            retry=retry,
            heartbeat_interval=heartbeat,
            max_item_bytes=max_item_bytes,
        ) as q:
            report(
                f"consumer {q.consumer_id}: waiting for items on queue {conn.queue} at {conn.shown} "
                f"(concurrency {concurrency})",
                consumer=q.consumer_id,
            )
            if metrics_port is None:
                return await Consumer(q, work_fn, config).run(stop)
            metrics = Metrics(q)
            async with serve_metrics(metrics, metrics_port):
                return await Consumer(q, work_fn, config, metrics).run(stop)

    summary = run(go(), url=conn.url)
    report(summary.line(), summary=summary.to_json())
    if summary_file is not None:
        summary_file.write_text(json.dumps(summary.to_json()))
