"""The cases of bench/run.py's main table: the baselines' helper processes and the asyncq CLIs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from common import SIZE, Bench, Sample, parse_number, read_summaries, record_usage
from procs import wait_for

# -- baselines ---------------------------------------------------------------------------------------------


def ceiling(bench: Bench) -> Sample:
    count = bench.sizes.ceiling
    proc = bench.helper("ceiling", "ceiling", "--count", str(count))
    sample = Sample()
    record_usage(sample, "p", proc.wait(120))
    sample.rate = count / json.loads(proc.output())["seconds"]
    return sample


def raw(mode: str, *, size: int = 30, items: int | None = None) -> Callable[[Bench], Sample]:
    """A raw redis-py producer and consumer of ``size``-byte payloads (``items``: a target row's count)."""

    def case(bench: Bench) -> Sample:
        count = bench.scaled(items) if items else bench.sizes.naive if mode == "naive" else bench.sizes.batched
        url = bench.server.url
        consumer = bench.helper(f"raw-{mode}-c", "consume", "--mode", mode, "--url", url, "--count", str(count))
        wait_for(lambda: "ready" in consumer.output(), 30, "the raw consumer")
        bench.begin()
        producer = bench.helper(f"raw-{mode}-p", "produce", "--url", url, "--count", str(count), "--size", str(size))
        sample = Sample()
        record_usage(sample, "p", producer.wait(300))
        record_usage(sample, "c", consumer.wait(300))
        bench.end(sample, count)
        first = json.loads(producer.output().splitlines()[-1])["first"]
        last = json.loads(consumer.output().splitlines()[-1])["last"]
        sample.rate = count / (last - first)
        sample.extra["items"] = count
        return sample

    return case


# -- asyncq ------------------------------------------------------------------------------------------------


def end_to_end(
    consumers: int,
    *,
    asyncio_loop: bool = False,
    rate: int = 0,
    options: tuple[str, ...] = (),
    tracing: bool = False,
    producer_options: tuple[str, ...] = (),
    size: str = SIZE,
    items: int | None = None,
) -> Callable[[Bench], Sample]:
    """One producer process (with ``producer_options``, ``--size size``), ``consumers`` consumer processes (with
    ``options``); with ``rate`` an offered load (items/s), else as fast as they go; ``items``: a target row's
    count.

    ``extra["busy cpu"]`` is the consumers' CPU seconds from the producer's start to its join: the items' cost
    without the processes' start-up and stop."""

    def case(bench: Bench) -> Sample:
        count = bench.scaled(items) if items else bench.sizes.latency if rate else bench.sizes.e2e
        summaries = [bench.summary_file() for _ in range(consumers)]
        procs = [
            bench.cli(
                "consumer",
                "--work",
                "0",
                "--summary-file",
                str(path),
                *options,
                asyncio_loop=asyncio_loop,
                tracing=tracing,
            )
            for path in summaries
        ]
        bench.registered(consumers)
        bench.begin()
        busy = -sum(proc.cpu_now() for proc in procs)
        args = ["-n", str(count), "--size", size, *producer_options]
        if rate:
            args += ["--rate", str(rate)]
        producer = bench.cli("producer", *args, asyncio_loop=asyncio_loop, tracing=tracing)
        sample = Sample()
        record_usage(sample, "p", producer.wait(300))
        busy += sum(proc.cpu_now() for proc in procs)
        bench.end(sample, count)
        sample.extra.update({"busy cpu": busy, "items": count})
        for n, proc in enumerate(procs, 1):
            record_usage(sample, f"c{n}" if consumers > 1 else "c", proc.stop())
        sample.rate = count / parse_number(r"all processed after ([\d.]+) s", producer.output())
        read_summaries(sample, summaries)
        return sample

    return case


def producer_alone(
    *, asyncio_loop: bool = False, tracing: bool = False, options: tuple[str, ...] = ()
) -> Callable[[Bench], Sample]:
    def case(bench: Bench) -> Sample:
        count = bench.sizes.producer
        bench.begin()
        args = ("-n", str(count), "--size", SIZE, "--no-wait", *options)
        producer = bench.cli("producer", *args, asyncio_loop=asyncio_loop, tracing=tracing)
        sample = Sample()
        record_usage(sample, "p", producer.wait(300))
        bench.end(sample, count)
        sample.rate = parse_number(r"\(([\d,]+) items/s\)", producer.output())
        return sample

    return case


def idle(bench: Bench) -> Sample:
    """A consumer with 1000 coroutines and nothing to do: what it costs to keep it waiting."""
    consumer = bench.cli("consumer", "--work", "0", "--concurrency", "1000")
    bench.registered(1)
    time.sleep(min(1.0, bench.sizes.idle))  # let start-up settle
    start, cpu = time.monotonic(), consumer.cpu_now()
    time.sleep(bench.sizes.idle)
    used = consumer.cpu_now() - cpu
    sample = Sample(idle_cpu=100 * used / (time.monotonic() - start))
    record_usage(sample, "c", consumer.stop())
    return sample
