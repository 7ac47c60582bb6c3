"""The rows for the targets of the performance issue that bench/run.py's main rows do not cover, each against a
baseline measured in the same run; ``--only`` selects a group by its name's prefix:

- ``put1``: one coroutine awaiting each ``put()`` in turn (``library.py put1``), against raw redis-py awaiting
  each ``LPUSH`` and each ``EVALSHA`` of a one-line LPUSH script, and ``redis-benchmark -c 1 -P 1 -t lpush``.
- ``memory`` (bench/memory.py): what a waiting item holds in Redis (``INFO memory`` used_memory before and
  after ``put_many`` of N items with no consumer), against a bare ``LPUSH`` of the same payload, at 30 B, 1 KiB,
  16 KiB, 256 KiB.
- ``sizes``: end to end at those payload sizes with 1, 2 and 4 consumer processes, each beside the raw batched
  baseline at the same size (its "x batched" column); MB/s of payload and redis-server CPU per item.
- ``fair``: 3 consumer processes; each one's share of the items processed (from its ``--summary-file``).

``consumer_cpu()`` is the "consumer CPU per item" section, from run.py's e2e 1+1 and 1,000 items/s rows.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections.abc import Callable

from cases import end_to_end, raw
from common import QUEUE, Bench, Case, Results, Sample, Target, ratio, record_usage
from memory import memory_cases

KIB = 1024
# The producer CLI's item is {"data":"<--size hex characters>","producer":N} in compact JSON, N one digit with its
# default 5 coroutines: this many bytes around the hex, so its payload can be sized exactly.
PRODUCER_JSON = len('{"data":"","producer":0}')
# Bytes, label, items end to end, items waiting (memory rows): full-run counts, so that each run takes a few
# seconds on 2 cores (the size matrix is the biggest group of the run).
SIZES = (
    (30, "30 B", 100_000, 100_000),
    (KIB, "1 KiB", 50_000, 50_000),
    (16 * KIB, "16 KiB", 10_000, 10_000),
    (256 * KIB, "256 KiB", 1_000, 2_000),
)
PUT1_ITEMS = 20_000
FAIR_ITEMS = 20_000
FAIR_CONSUMERS = 3

PUT1_ASYNCQ = "put1: asyncq, await each put()"
PUT1_LPUSH = "put1: redis-py, await each LPUSH"


def at_least(text: str, rows: dict[str, str], *, trips: float | None = None) -> Target:
    """The row's rate is no lower than that of each of ``rows`` (case name: short label), measured in the same
    run; with ``trips``, also under that many round trips per item."""

    def met(s: Sample, results: Results) -> bool | None:
        bases = [results[name].rate if name in results else None for name in rows]
        if s.rate is None or None in bases:
            return None
        fast = all(base is not None and s.rate >= base for base in bases)
        return fast and (trips is None or (s.trips is not None and s.trips < trips))

    def figure(s: Sample, results: Results) -> str:
        return ", ".join(
            f"x {ratio(s.rate, results[name].rate)} {label}" for name, label in rows.items() if name in results
        )

    return Target(text, met, needs=tuple(rows), figure=figure)


# -- one awaited put at a time -----------------------------------------------------------------------------


def put1(script: str, *args: str) -> Callable[[Bench], Sample]:
    """A helper that awaits each put in turn and times its own loop (``library.py`` or ``baselines.py``)."""

    def case(bench: Bench) -> Sample:
        count = bench.scaled(PUT1_ITEMS)
        bench.begin()
        proc = bench.helper("put1", "put1", "--url", bench.server.url, "--count", str(count), *args, script=script)
        sample = Sample()
        record_usage(sample, "p", proc.wait(300))
        bench.end(sample, count)
        result = json.loads(proc.output().splitlines()[-1])
        sample.rate, sample.p50, sample.p99 = count / result["seconds"], result["p50_ms"], result["p99_ms"]
        return sample

    return case


def redis_benchmark(bench: Bench) -> Sample:
    """``redis-benchmark -c 1 -P 1 -t lpush -d 30``: Redis's own C client, one connection, one request at a time."""
    if shutil.which("redis-benchmark") is None:  # packaged with redis-server nearly everywhere, but not always
        print("  no redis-benchmark on PATH: its row stays empty", file=sys.stderr)
        return Sample()
    count = bench.scaled(PUT1_ITEMS)
    host_port = ("-h", "127.0.0.1", "-p", str(bench.server.port))
    argv = ["redis-benchmark", *host_port, "-c", "1", "-P", "1", "-n", str(count), "-d", "30", "-t", "lpush", "--csv"]
    bench.begin()
    proc = bench.spawn("redis-benchmark", argv)
    sample = Sample()
    record_usage(sample, "p", proc.wait(300))
    bench.end(sample, count)
    row = next(r for r in csv.DictReader(io.StringIO(proc.output())) if r["test"].startswith("LPUSH"))
    sample.rate, sample.p50, sample.p99 = float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])
    return sample


# -- payload sizes -----------------------------------------------------------------------------------------


def _redis_use(s: Sample) -> tuple[float, float] | None:
    """redis-server's CPU per item (µs), and its share of the run's wall time (items / rate)."""
    items, redis_cpu = s.extra.get("items"), s.cpu.get("r")
    if s.rate is None or not items or redis_cpu is None:
        return None
    return redis_cpu / items * 1e6, redis_cpu * s.rate / items


def _throughput(size: int, baseline: str) -> Callable[[Sample, Results], str]:
    """MB/s of payload; redis-server's CPU per item, against the raw batched baseline's; how busy Redis was."""

    def figure(s: Sample, results: Results) -> str:
        use, base = _redis_use(s), _redis_use(results[baseline]) if baseline in results else None
        if s.rate is None or use is None:
            return "-"
        mine = s is results.get(baseline)  # the baseline's own row: no ratio to itself
        versus = f" (x {ratio(use[0], base[0])} batched's)" if base is not None and not mine else ""
        return f"{s.rate * size / 1e6:.1f} MB/s, r {use[0]:.1f} µs/item{versus}, Redis busy {use[1]:.0%}"

    return figure


COPY_FACTOR = 2.0


def _copy_bound(baseline: str) -> Callable[[Sample, Results], bool | None]:
    """Not Redis's CPU: Redis does about what moving the bytes costs (at most ``COPY_FACTOR`` times the CPU per
    item of the raw batched baseline at the same size, which only copies them in and out) and is busy less than
    half of the run, so that what limits the rate is copying bytes through the clients and sockets."""

    def met(s: Sample, results: Results) -> bool | None:
        use, base = _redis_use(s), _redis_use(results[baseline]) if baseline in results else None
        if use is None or base is None or not base[0]:  # none measured (10 ms ticks: a tiny --quick run)
            return None
        return use[0] <= COPY_FACTOR * base[0] and use[1] < 0.5

    return met


def size_cases() -> list[Case]:
    cases = []
    for size, label, items, _ in SIZES:
        baseline = f"sizes: {label}, redis-py batched (RPOP 100)"
        note = Target("", lambda s, _: None, figure=_throughput(size, baseline))
        cases.append(Case(baseline, raw("batched", size=size, items=items), note, versus=baseline))
        if size == 256 * KIB:
            text = f"copying bytes, not Redis CPU (r ≤{COPY_FACTOR:.0f} x batched's, busy <50%)"
            note = Target(text, _copy_bound(baseline), needs=(baseline,), figure=_throughput(size, baseline))
        for consumers in (1, 2, 4):
            name = f"sizes: {label}, asyncq 1 producer + {consumers} consumer{'s' if consumers > 1 else ''}"
            run = end_to_end(consumers, size=str(size - PRODUCER_JSON), items=items)
            cases.append(Case(name, run, note, versus=baseline))
    return cases


# -- fair share --------------------------------------------------------------------------------------------


def _shares(s: Sample, _: Results) -> str:
    shares = [s.extra[f"share c{n}"] for n in range(1, FAIR_CONSUMERS + 1) if f"share c{n}" in s.extra]
    return "shares " + "/".join(f"{100 * share:.0f}" for share in shares) + " %" if shares else "-"


def _fair(s: Sample, _: Results) -> bool | None:
    return s.extra["min share"] >= 0.2 if "min share" in s.extra else None


CASES = [
    Case(PUT1_ASYNCQ, put1("library.py", "--queue", QUEUE), at_least("≥ awaited LPUSH", {PUT1_LPUSH: "LPUSH"})),
    Case(PUT1_LPUSH, put1("baselines.py", "--mode", "lpush")),
    Case("put1: redis-py, await each EVALSHA (LPUSH script)", put1("baselines.py", "--mode", "evalsha")),
    Case("put1: redis-benchmark -c 1 -P 1 -t lpush", redis_benchmark),
    *memory_cases(SIZES),
    *size_cases(),
    Case(
        f"fair: {FAIR_CONSUMERS} consumer processes, each one's share",
        end_to_end(FAIR_CONSUMERS, items=FAIR_ITEMS),
        Target("min share ≥20%", _fair, figure=_shares),
    ),
]


def consumer_cpu(busy: Sample | None, offered: Sample | None) -> str:
    """The consumer's CPU per item, from the producer's start to its join (start-up and stop left out): busy
    (e2e 1+1, as fast as it goes) and at 1,000 items/s offered (the latency row)."""
    lines = []
    for what, s, limit in (("busy, e2e 1+1", busy, 8.0), ("at 1,000 items/s offered", offered, 40.0)):
        if s is None or "busy cpu" not in s.extra or not s.extra.get("items"):
            continue
        us = s.extra["busy cpu"] / s.extra["items"] * 1e6
        lines.append(f"  {what}: {us:.1f} µs/item (target ≤{limit:.0f} µs): {'met' if us <= limit else 'MISSED'}")
    return "Consumer CPU per item (from the producer's start to its join):\n" + "\n".join(lines) if lines else ""
