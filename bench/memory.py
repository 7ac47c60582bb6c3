"""bench/targets.py's "memory" rows: what a waiting item holds in Redis, against a bare LPUSH of the same payload.

``INFO memory`` used_memory before and after ``put_many`` of N items with no consumer (``library.py fill``), then
the same after as many pipelined LPUSHes (``baselines.py produce``), each from an empty database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from common import QUEUE, Bench, Case, Results, Sample, Target, record_usage
from library import FILL_BATCH
from procs import Proc, wait_for

RAW_KEY = "bench:raw"  # baselines.py's key


def memory(size: int, items: int) -> Callable[[Bench], Sample]:
    """used_memory per item after ``put_many`` of ``items`` (asyncq), then after as many bare LPUSHes, each from
    an empty database; the row's rate is asyncq's fill.

    Each fill starts from one batch put already, so that what a queue holds once (its counters, the list's first
    node) is not counted per item; used_memory is read once the filling client's connection is gone, so that its
    buffers are not counted either; and Redis's per-command latency histograms are off meanwhile (each is
    allocated on its command's first call, and CONFIG RESETSTAT frees them: tens of KB that come and go)."""

    def case(bench: Bench) -> Sample:
        count, url = bench.scaled(items), bench.server.url

        def used() -> int:
            wait_for(lambda: int(bench.client.info("clients")["connected_clients"]) == 1, 30, "the client to leave")
            return int(bench.client.info("memory")["used_memory"])

        def fill(n: int) -> Proc:
            args = ("fill", "--url", url, "--queue", QUEUE, "--count", str(n), "--size", str(size))
            return bench.helper("fill", *args, script="library.py")

        tracking = str(bench.client.config_get("latency-tracking")["latency-tracking"])
        bench.client.config_set("latency-tracking", "no")
        try:
            fill(FILL_BATCH).wait(60)
            bench.begin()
            before = used()
            proc = fill(count)
            sample = Sample()
            record_usage(sample, "p", proc.wait(300))
            sample.extra["bytes"] = (used() - before) / count
            bench.end(sample, count)
            result = json.loads(proc.output().splitlines()[-1])
            if result["waiting"] != FILL_BATCH + count:
                raise RuntimeError(f"{result['waiting']} items waiting after putting {FILL_BATCH} + {count}")
            sample.rate = count / result["seconds"]
            bench.client.flushall()
            args = ("produce", "--url", url, "--key", RAW_KEY, "--size", str(size))
            bench.helper("fill-raw", *args, "--count", str(FILL_BATCH)).wait(60)
            before = used()
            bench.helper("fill-raw", *args, "--count", str(count)).wait(300)
            sample.extra["bare bytes"] = (used() - before) / count
        finally:
            bench.client.config_set("latency-tracking", tracking)
        return sample

    return case


def _bytes(s: Sample, _: Results) -> str:
    mine, bare = s.extra.get("bytes"), s.extra.get("bare bytes")
    if mine is None or bare is None:
        return "-"
    return f"{mine:.0f} B/item, bare LPUSH {bare:.0f} (+{mine - bare:.0f})"


def memory_cases(sizes: Iterable[tuple[int, str, int, int]]) -> list[Case]:
    """One row per (bytes, label, -, items waiting) of ``sizes``. The target (≤64 B per waiting item) is at 30 B;
    the larger sizes show their bytes beside no target."""
    cases = []
    for size, label, _, items in sizes:
        target = Target("", lambda s, _: None, figure=_bytes)
        if size == 30:
            target = Target(
                "≤64 B/item", lambda s, _: s.extra["bytes"] <= 64 if "bytes" in s.extra else None, figure=_bytes
            )
        cases.append(Case(f"memory: {label} items waiting", memory(size, items), target))
    return cases
