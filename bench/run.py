"""Benchmark asyncq against the targets of its performance issue; prints one table of medians.

    python bench/run.py [--quick] [--repeat N]

Starts its own redis-server on a free loopback port and runs every case as real processes: the ``producer`` and
``consumer`` console scripts of this environment (no-op handler, 30-character payloads), and the helper
processes of ``bench/baselines.py`` for the in-process ``asyncio.Queue`` ceiling and two raw redis-py loops.

Columns: items/s (end to end: from the producer's first put to the last acknowledgement, as the producer's
``join()`` sees it); ratios against the ceiling and the raw baselines of the same run; enqueue-to-handler
latency p50/p99 from the consumers' summaries; Redis requests per item (``trips``: socket reads the server
processed, which is one per round trip or pipeline; ``cmds``: every command in ``INFO commandstats``,
counting those run inside Lua scripts); CPU seconds and peak RSS of each process (p producer, c consumer,
r redis-server), from ``wait4`` and ``/proc``. The idle row shows CPU as a percentage of its idle window.

The two "tracing on" rows run the same processes with OpenTelemetry set up from the environment
(``OTEL_TRACES_EXPORTER=none``: every publish and process span is made, sampled and ended, but not exported,
so the figure is asyncq's instrumentation, not a collector's network); the section after the table gives
them as ratios of the same cases without tracing, in the same run.

The "vocab" rows (``--only vocab``) put with an idempotency key per item (``producer --keys``) and through a
priority queue (``--kind priority --priority 0-9``); the section after the table gives them as ratios of the
plain FIFO rows of the same run.

The "put1", "memory", "sizes" and "fair" rows (bench/targets.py; ``--only`` one of those words runs that group)
are the issue's other targets, each against a baseline of the same run; the "measured" column gives what a
target was judged on. A target measured against another row brings that row along with ``--only``;
``--only cpu`` runs the two rows the "consumer CPU per item" section reads. The wall time of each group is
printed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import redis
import targets
from cases import ceiling, end_to_end, idle, producer_alone, raw
from common import FULL, QUICK, Bench, Case, Results, Sample, Sizes, Target, ratio

from asyncq.tools.embedded import EmbeddedRedis


def _rate_at_least(rate: float) -> Callable[[Sample, Results], bool]:
    return lambda s, _: s.rate is not None and s.rate >= rate and s.trips is not None and s.trips < 0.5


E2E = Target("≥50,000/s, trips<0.5", _rate_at_least(50_000))
PUTS = Target("≥100,000/s, trips<0.5", _rate_at_least(100_000))
LATENCY = Target(
    "p50<0.5, p99<1 ms",
    lambda s, _: s.p50 is not None and s.p99 is not None and s.p50 < 0.5 and s.p99 < 1,
)
IDLE = Target(
    "<80 MB, <2% CPU",
    lambda s, _: s.idle_cpu is not None and s.idle_cpu < 2 and s.rss.get("c", 1e9) < 80,
)

CEILING = "asyncio.Queue in-process (ceiling)"
VOCAB_FIFO_PUT = "vocab: producer alone, FIFO put"
VOCAB_KEYED_PUT = "vocab: producer alone, keyed put"
VOCAB_PRIORITY_PUT = "vocab: producer alone, priority put"
VOCAB_FIFO_E2E = "vocab: e2e 1+1, FIFO"
VOCAB_KEYED_E2E = "vocab: e2e 1+1, keyed puts"
VOCAB_PRIORITY_E2E = "vocab: e2e 1+1, priority queue"
KEYED = ("--keys",)
PRIORITY = ("--kind", "priority", "--priority", "0-9")
NAIVE = "redis-py naive reliable (BLMOVE+LREM)"
BATCHED = "redis-py unreliable batched (RPOP 100)"

E2E_1 = "asyncq e2e 1 producer + 1 consumer"
PRODUCER = "asyncq producer alone (puts/s)"
LATENCY_1000 = "asyncq latency at 1,000 items/s"
# The issue's end-to-end targets: no lower than the raw batched baseline of the same run, and 2 consumer
# processes no lower than 1.
E2E_VS_BATCHED = targets.at_least("≥1.0 x batched, trips<0.5", {BATCHED: "batched"}, trips=0.5)
E2E_2_VS = targets.at_least("≥1.0 x batched and ≥1+1, trips<0.5", {BATCHED: "batched", E2E_1: "1+1"}, trips=0.5)
# --only cpu: the rows the "consumer CPU per item" section reads.
ALIASES = {"cpu": (E2E_1, LATENCY_1000)}
E2E_TRACED = "asyncq e2e 1+1, tracing on"
PRODUCER_TRACED = "asyncq producer alone, tracing on"
LATENCY_TRACED = "asyncq latency at 1,000/s, tracing on"

CASES = [
    Case(CEILING, ceiling),
    Case(NAIVE, raw("naive")),
    Case(BATCHED, raw("batched")),
    Case(E2E_1, end_to_end(1), E2E_VS_BATCHED),
    Case("asyncq e2e 1 producer + 2 consumers", end_to_end(2), E2E_2_VS),
    Case("asyncq e2e 1+1, consumer --prefetch 100", end_to_end(1, options=("--prefetch", "100")), E2E),
    Case(PRODUCER, producer_alone(), PUTS),
    Case(LATENCY_1000, end_to_end(1, rate=1000), LATENCY),
    Case("asyncq idle consumer, concurrency 1000", idle, IDLE),
    Case("asyncq e2e 1+1, asyncio loop", end_to_end(1, asyncio_loop=True), E2E),
    Case("asyncq producer alone, asyncio loop", producer_alone(asyncio_loop=True), PUTS),
    Case("asyncq latency at 1,000/s, asyncio loop", end_to_end(1, asyncio_loop=True, rate=1000), LATENCY),
    Case(E2E_TRACED, end_to_end(1, tracing=True)),
    Case(PRODUCER_TRACED, producer_alone(tracing=True)),
    Case(LATENCY_TRACED, end_to_end(1, rate=1000, tracing=True)),
    # The queue vocabulary (issue 15): what a keyed put and a priority queue cost against plain FIFO puts,
    # measured in the same run (vocabulary_section): --only vocab runs these alone.
    Case(VOCAB_FIFO_PUT, producer_alone()),
    Case(VOCAB_KEYED_PUT, producer_alone(options=KEYED)),
    Case(VOCAB_PRIORITY_PUT, producer_alone(options=PRIORITY)),
    Case(VOCAB_FIFO_E2E, end_to_end(1)),
    Case(VOCAB_KEYED_E2E, end_to_end(1, producer_options=KEYED)),
    Case(VOCAB_PRIORITY_E2E, end_to_end(1, options=("--kind", "priority"), producer_options=PRIORITY)),
    # The issue's other targets (bench/targets.py): --only put1, memory, sizes or fair runs one group.
    *targets.CASES,
]


def vocabulary_section(results: dict[str, Sample]) -> str:
    """Keyed puts and a priority queue as ratios of plain FIFO puts of the same run (items/s)."""
    pairs = [
        ("keyed put / plain put (producer alone)", VOCAB_KEYED_PUT, VOCAB_FIFO_PUT),
        ("priority put / FIFO put (producer alone)", VOCAB_PRIORITY_PUT, VOCAB_FIFO_PUT),
        ("keyed / plain (e2e 1+1)", VOCAB_KEYED_E2E, VOCAB_FIFO_E2E),
        ("priority / FIFO (e2e 1+1)", VOCAB_PRIORITY_E2E, VOCAB_FIFO_E2E),
    ]
    lines = []
    for label, case, base in pairs:
        if case in results and base in results:
            value, ref = results[case].rate, results[base].rate
            trips = results[case].trips
            lines.append(f"  {label}: {ratio(value, ref)} x the rate; {_fmt(trips, '.3f')} trips/item")
    return "Queue vocabulary, same run:\n" + "\n".join(lines) if lines else ""


def tracing_section(results: dict[str, Sample]) -> str:
    """The cost of tracing: the traced cases against the same cases untraced, measured in this run."""
    lines = ["Tracing (OpenTelemetry SDK, OTEL_TRACES_EXPORTER=none), against the same case untraced in this run:"]
    for traced, plain, what in ((E2E_TRACED, E2E_1, "e2e 1+1"), (PRODUCER_TRACED, PRODUCER, "producer alone")):
        on, off = results.get(traced), results.get(plain)
        if on is None or off is None:
            continue
        cpu_on, cpu_off = sum(on.cpu.get(k, 0) for k in ("p", "c")), sum(off.cpu.get(k, 0) for k in ("p", "c"))
        lines.append(
            f"  {what}: {_fmt(on.rate, ',.0f')} items/s with tracing, {_fmt(off.rate, ',.0f')} without: "
            f"x {ratio(on.rate, off.rate)}; CPU of the asyncq processes x {ratio(cpu_on, cpu_off)}"
        )
    on, off = results.get(LATENCY_TRACED), results.get(LATENCY_1000)
    if on is not None and off is not None:
        lines.append(
            f"  latency at 1,000 items/s: p50 {_fmt(on.p50, '.2f')} ms / p99 {_fmt(on.p99, '.2f')} ms with tracing, "
            f"p50 {_fmt(off.p50, '.2f')} / p99 {_fmt(off.p99, '.2f')} ms without"
        )
    return "\n".join(lines) if len(lines) > 1 else ""


# -- medians and the table ---------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def median(samples: list[Sample]) -> Sample:
    """The median of each figure separately."""

    def per_key(maps: list[dict[str, float]]) -> dict[str, float]:
        keys = dict.fromkeys(k for m in maps for k in m)
        return {k: statistics.median(m[k] for m in maps if k in m) for k in keys}

    return Sample(
        rate=_median([s.rate for s in samples]),
        p50=_median([s.p50 for s in samples]),
        p99=_median([s.p99 for s in samples]),
        trips=_median([s.trips for s in samples]),
        cmds=_median([s.cmds for s in samples]),
        cpu=per_key([s.cpu for s in samples]),
        rss=per_key([s.rss for s in samples]),
        idle_cpu=_median([s.idle_cpu for s in samples]),
        extra=per_key([s.extra for s in samples]),
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _per_process(values: dict[str, float], spec: str) -> str:
    """``p 1.20 c 3.40 r 0.90``: producer, consumer(s), then redis-server."""
    order = sorted(values, key=lambda k: ("pcr".index(k[0]), k))
    return " ".join(f"{k} {format(values[k], spec)}" for k in order)


def table(results: dict[str, Sample]) -> str:
    base = {name: results[name].rate if name in results else None for name in (CEILING, NAIVE, BATCHED)}
    header = [
        "case",
        "items/s",
        "x ceiling",
        "x naive",
        "x batched",
        "p50 ms",
        "p99 ms",
        "trips/item",
        "cmds/item",
        "CPU s (idle: %)",
        "peak RSS MB",
        "target",
        "measured",
    ]
    rows = [header]
    for case in CASES:
        s = results.get(case.name)
        if s is None:
            continue
        cpu = f"c {s.idle_cpu:.2f}%" if s.idle_cpu is not None else _per_process(s.cpu, ".2f")
        rows.append(
            [
                case.name,
                _fmt(s.rate, ",.0f"),
                ratio(s.rate, base[CEILING]),
                ratio(s.rate, base[NAIVE]),
                ratio(s.rate, results[case.versus].rate if case.versus in results else base[BATCHED]),
                _fmt(s.p50, ".2f"),
                _fmt(s.p99, ".2f"),
                _fmt(s.trips, ".3f"),
                _fmt(s.cmds, ".2f"),
                cpu,
                _per_process(s.rss, ".0f"),
                case.target.text if case.target else "",
                "" if case.target is None else case.target.verdict(s, results),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i in (0, 9, 10, 11, 12) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(server: EmbeddedRedis, repeat: int, sizes: Sizes) -> str:
    info = redis.Redis.from_url(server.url).info("server")
    return (
        f"asyncq benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"redis-server {info['redis_version']}, redis-py {version('redis')}, hiredis {version('hiredis')}, "
        f"uvloop {version('uvloop')}; medians of {repeat} run(s); items: e2e {sizes.e2e:,}, "
        f"producer {sizes.producer:,}, naive {sizes.naive:,}, batched {sizes.batched:,}, "
        f"latency {sizes.latency:,} at 1,000/s; idle {sizes.idle:.0f} s. {_load()}"
    )


def _load(*, before: bool = True) -> str:
    """The load average: other busy processes on the machine skew every figure (CPU seconds the least).

    Before the run a 5-minute figure over 1 means something else was busy; after it, the bench's own load
    is in it too."""
    one, five, _ = os.getloadavg()
    busy = " (something else keeps the machine busy: figures are skewed)" if before and five > 1.0 else ""
    return f"Load average 1/5 min: {one:.2f}/{five:.2f}{busy}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each case with tiny counts (a smoke test)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per case (default 5; 1 with --quick)")
    parser.add_argument(
        "--only",
        default="",
        help="run only the cases whose name contains this text (or one of several, comma-separated)",
    )
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    parser.add_argument(
        "--no-ha",
        action="store_true",
        help="skip the cluster, Sentinel and shards cases (bench/ha.py, bench/shards.py)",
    )
    args = parser.parse_args()
    if args.list:
        print("\n".join(case.name for case in CASES))
        return 0
    sizes = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 5)
    wanted = [part.strip().lower() for part in args.only.split(",")]
    chosen = {c.name for c in CASES if any(part in c.name.lower() for part in wanted)}
    chosen.update(name for part in wanted for name in ALIASES.get(part, ()))
    # A target measured against another row (a baseline of the same run) brings that row along.
    chosen.update(need for c in CASES if c.name in chosen and c.target for need in c.target.needs)
    cases = [c for c in CASES if c.name in chosen]
    # --only shards (or shard): the sharded-queue table of bench/shards.py, on a cluster of its own.
    shards = not args.no_ha and (not args.only or any(part.startswith("shard") for part in wanted))
    if cases:
        single_server(cases, sizes, repeat)
    if not (args.no_ha or args.only):
        import ha  # the cluster and Sentinel cases: servers of their own

        start = time.monotonic()
        print(ha.report(repeat, 2000 if args.quick else 20000, 200 if args.quick else 2000))
        print(f"Wall time: past one Redis {time.monotonic() - start:.0f} s")
    if shards:
        import shards as sharded  # one queue over 1 and 6 shards of a 3-master cluster

        start = time.monotonic()
        print(sharded.report(1 if args.quick else min(repeat, 3), 2000 if args.quick else 20000))
        print(f"Wall time: shards {time.monotonic() - start:.0f} s")
    print(f"After the run: {_load(before=False)}")
    return 0


def single_server(cases: list[Case], sizes: Sizes, repeat: int) -> None:
    """The cases on a private redis-server: the main table (and the tracing section, if traced cases ran)."""
    with tempfile.TemporaryDirectory(prefix="asyncq-bench-") as tmp, EmbeddedRedis() as server:
        bench = Bench(server, sizes, Path(tmp))
        print(describe(server, repeat, sizes), flush=True)
        results: dict[str, Sample] = {}
        walls: dict[str, float] = {}  # by group: the name's prefix before ":" (vocab, sizes, ...), else "main"
        for case in cases:
            start, samples = time.monotonic(), []
            for n in range(repeat):
                bench.fresh()
                try:
                    samples.append(case.run(bench))
                finally:
                    bench.fresh()
                print(f"  {case.name}: run {n + 1}/{repeat} done", file=sys.stderr, flush=True)
            results[case.name] = median(samples)
            group = case.name.split(":")[0] if ":" in case.name else "main"
            walls[group] = walls.get(group, 0.0) + time.monotonic() - start
        print(table(results))
        cpu = targets.consumer_cpu(results.get(E2E_1), results.get(LATENCY_1000))
        for section in (tracing_section(results), vocabulary_section(results), cpu):
            if section:
                print(section)
        print("Wall time: " + ", ".join(f"{group} {seconds:.0f} s" for group, seconds in walls.items()))


if __name__ == "__main__":
    sys.exit(main())
