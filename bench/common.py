"""What every case of bench/run.py shares: the private server's helpers (``Bench``), one run's figures
(``Sample``), the targets, and the small parsers of the processes' output."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from procs import Proc, Usage, cpu_seconds, wait_for

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis

QUEUE = "bench"
KEYS = Keys(QUEUE)
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
SIZE = "6"  # payload: {"data":"<6 hex>","producer":N}, 30 bytes of JSON (the 30-byte items)


@dataclass(frozen=True)
class Sizes:
    """Items (or seconds) per case."""

    e2e: int
    producer: int
    ceiling: int
    naive: int
    batched: int
    latency: int
    idle: float
    scale: float = 1.0  # the target rows' item counts (bench/targets.py) are their full-run counts times this


FULL = Sizes(e2e=200_000, producer=200_000, ceiling=200_000, naive=20_000, batched=200_000, latency=5_000, idle=10.0)
QUICK = Sizes(e2e=2_000, producer=2_000, ceiling=2_000, naive=200, batched=2_000, latency=200, idle=1.0, scale=0.01)


@dataclass
class Sample:
    """One run of one case. Latencies in ms; cpu in seconds (idle case: percent); rss in MB."""

    rate: float | None = None
    p50: float | None = None
    p99: float | None = None
    trips: float | None = None
    cmds: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    idle_cpu: float | None = None
    extra: dict[str, float] = field(default_factory=dict)  # figures only some cases have, by name


Results = dict[str, Sample]  # the medians of this run, by case name


@dataclass(frozen=True)
class Target:
    """What a row should reach. ``met`` sees the row's sample and every result of the run, so that a target can
    be a ratio of a baseline measured in the same run (named in ``needs``: ``--only`` runs those too); it
    returns None when it cannot tell. ``figure`` is what was measured, printed beside the verdict."""

    text: str
    met: Callable[[Sample, Results], bool | None]
    needs: tuple[str, ...] = ()
    figure: Callable[[Sample, Results], str] | None = None

    def verdict(self, sample: Sample, results: Results) -> str:
        word = {True: "met", False: "MISSED", None: ""}[self.met(sample, results)]
        shown = self.figure(sample, results) if self.figure else ""
        return f"{word}: {shown}" if word and shown else word or shown


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Bench], Sample]
    target: Target | None = None
    versus: str | None = None  # the batched baseline of the "x batched" column, if not the 30-byte one


class Bench:
    """The private Redis server and the helpers every case uses."""

    def __init__(self, server: EmbeddedRedis, sizes: Sizes, workdir: Path) -> None:
        self.server = server
        self.sizes = sizes
        self.workdir = workdir
        self.client = redis.Redis.from_url(server.url)
        self._runs = 0
        self._reads = 0
        self._redis_cpu = 0.0
        self._started: list[Proc] = []

    @property
    def redis_pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def env(self, *, asyncio_loop: bool = False, tracing: bool = False) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCQ_", "OTEL_")) and k != "REDIS_URL"}
        base.update(REDIS_URL=self.server.url, ASYNCQ_QUEUE=QUEUE, PYTHONUNBUFFERED="1")
        if asyncio_loop:
            base["ASYNCQ_UVLOOP"] = "0"  # the CLIs run on uvloop unless told otherwise
        if tracing:
            base.update(OTEL_TRACES_EXPORTER="none", OTEL_SERVICE_NAME="asyncq-bench")
        return base

    def spawn(self, name: str, argv: list[str], *, asyncio_loop: bool = False, tracing: bool = False) -> Proc:
        self._runs += 1
        env = self.env(asyncio_loop=asyncio_loop, tracing=tracing)
        proc = Proc(f"{self._runs:03d}-{name}", argv, env, self.workdir)
        self._started.append(proc)
        return proc

    def cli(self, name: str, *args: str, asyncio_loop: bool = False, tracing: bool = False) -> Proc:
        return self.spawn(name, [str(BIN / name), *args], asyncio_loop=asyncio_loop, tracing=tracing)

    def helper(self, name: str, *args: str, script: str = "baselines.py") -> Proc:
        return self.spawn(name, [sys.executable, str(HERE / script), *args])

    def scaled(self, items: int) -> int:
        """A target row's item count: ``items`` in a full run, fewer with --quick."""
        return max(10, round(items * self.sizes.scale))

    def summary_file(self) -> Path:
        self._runs += 1
        return self.workdir / f"{self._runs:03d}-summary.json"

    def fresh(self) -> None:
        """An empty database; and no process left over from a failed case."""
        for proc in self._started:
            proc.kill()
        self._started.clear()
        self.client.flushall()

    def registered(self, consumers: int) -> None:
        """Wait until ``consumers`` consumer processes have their heartbeat (so they are claiming)."""

        def ready() -> bool:
            return sum(1 for _ in self.client.scan_iter(match=KEYS.heartbeat_pattern)) >= consumers

        wait_for(ready, 30, f"{consumers} consumer(s) to register")

    def begin(self) -> None:
        """Start counting Redis's work: the hot path only, not the processes' start-up."""
        self.client.config_resetstat()
        self._reads = int(self.client.info("stats")["total_reads_processed"])
        self._redis_cpu = cpu_seconds(self.redis_pid)

    def end(self, sample: Sample, items: int) -> None:
        """Fill in round trips and commands per item, and redis-server's CPU, since ``begin()``."""
        reads = int(self.client.info("stats")["total_reads_processed"]) - self._reads - 1  # less our INFO
        calls = sum(
            int(stats["calls"])
            for name, stats in self.client.info("commandstats").items()
            if isinstance(stats, dict) and name not in ("cmdstat_info", "cmdstat_config|resetstat")
        )
        sample.trips = reads / items
        sample.cmds = calls / items
        sample.cpu["r"] = cpu_seconds(self.redis_pid) - self._redis_cpu


def ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.3g}"


def parse_number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in output:\n{text}")
    return float(match.group(1).replace(",", ""))


def record_usage(sample: Sample, key: str, usage: Usage) -> None:
    sample.cpu[key] = usage.cpu
    sample.rss[key] = usage.rss_mb


def read_summaries(sample: Sample, summaries: list[Path]) -> None:
    """The worst p50 and p99 over the consumers (each summary has its own quantiles), and each consumer's share
    of the items processed (``share c1``, ...; ``min share``)."""
    data = [json.loads(path.read_text()) for path in summaries]
    sample.p50 = max(d["latency_ms"]["p50"] for d in data)
    sample.p99 = max(d["latency_ms"]["p99"] for d in data)
    total = sum(d["processed"] for d in data)
    if total:
        shares = [d["processed"] / total for d in data]
        sample.extra.update({f"share c{n}": share for n, share in enumerate(shares, 1)})
        sample.extra["min share"] = min(shares)
