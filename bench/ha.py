"""Benchmark asyncq past one Redis: a local 3-master cluster against a single server, and the cost of
``min_replicas=1`` on a Sentinel set (one master, one replica, three sentinels). Prints one table of medians.

    python bench/ha.py [--repeat N] [--count N]

Every server is a plain ``redis-server`` process on loopback, started here (tests/ha.py). The rows:
- end to end, 1 producer + 1 consumer process (``--work 0``, 30-character payloads), items/s as the producer's
  ``join()`` sees it, on a single server, on the cluster (the queue lives on one of its masters), and on the
  Sentinel set with ``--min-replicas`` 0 and 1;
- the producer alone, puts/s (batched ``put_many``), on the Sentinel set with ``--min-replicas`` 0 and 1;
- one coroutine awaiting each ``put()`` in turn (a lone put pays its round trips): put latency p50/p99 with
  ``min_replicas`` 0 and 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.ha: the servers the tests start, reused here

from asyncq import RedisQueue  # noqa: E402
from asyncq.tools.embedded import EmbeddedRedis  # noqa: E402
from tests.ha import LocalCluster, LocalSentinel  # noqa: E402

BIN = Path(sys.executable).parent
QUEUE = "bench-ha"


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_") and k != "REDIS_URL"}
    env.update(REDIS_URL=url, ASYNCQ_QUEUE=QUEUE, PYTHONUNBUFFERED="1")
    return env


def _run(argv: list[str], url: str, timeout: float = 300) -> str:
    done = subprocess.run(argv, env=_env(url), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def end_to_end(url: str, count: int, min_replicas: int = 0) -> float:
    """Items/s from the first put to the last acknowledgement (1 producer, 1 consumer process)."""
    consumer = subprocess.Popen(
        [str(BIN / "consumer"), "--work", "0"], env=_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        out = _run([str(BIN / "producer"), "-n", str(count), "--size", "30", "--min-replicas", str(min_replicas)], url)
    finally:
        consumer.terminate()
        consumer.wait(30)
    seconds = float(re.search(r"all processed after ([\d.]+) s", out).group(1))  # type: ignore[union-attr]
    return count / seconds


def producer_alone(url: str, count: int, min_replicas: int) -> float:
    out = _run(
        [str(BIN / "producer"), "-n", str(count), "--size", "30", "--no-wait", "--min-replicas", str(min_replicas)],
        url,
    )
    return float(re.search(r"\(([\d,.]+) items/s\)", out).group(1).replace(",", ""))  # type: ignore[union-attr]


def lone_put_latency(url: str, count: int, min_replicas: int) -> tuple[float, float]:
    """p50 and p99 (ms) of one coroutine awaiting each put in turn."""

    async def go() -> list[float]:
        took: list[float] = []
        async with RedisQueue(QUEUE + "-lone", url=url, min_replicas=min_replicas) as q:
            for n in range(count):
                start = time.perf_counter()
                await q.put(n)
                took.append((time.perf_counter() - start) * 1000)
        return took

    took = sorted(asyncio.run(go()))
    return statistics.median(took), took[int(len(took) * 0.99) - 1]


def _flush(url: str) -> None:
    async def go() -> None:
        async with RedisQueue(QUEUE, url=url) as q:
            await q.redis.flushdb()

    asyncio.run(go())


@contextmanager
def _single() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


@contextmanager
def _cluster() -> Iterator[str]:
    with LocalCluster(masters=3, replicas=0) as cluster:
        yield cluster.url


@contextmanager
def _sentinel() -> Iterator[str]:
    with LocalSentinel() as sentinel:
        yield sentinel.url


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeat))


def report(repeat: int, count: int, lone: int) -> str:
    """Run every case; the table as text."""
    rows: list[tuple[str, str]] = []
    places: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [
        ("single server", _single),
        ("3-master cluster", _cluster),
    ]
    for name, place in places:
        with place() as url:
            rate = median_of(repeat, lambda url=url: end_to_end(url, count))
            rows.append((f"e2e 1+1, {name}", f"{rate:,.0f} items/s"))
            print(f"  {rows[-1][0]}: done", file=sys.stderr, flush=True)
    with _sentinel() as url:
        for replicas in (0, 1):
            rate = median_of(repeat, lambda r=replicas: end_to_end(url, count, r))
            rows.append((f"e2e 1+1, sentinel set, --min-replicas {replicas}", f"{rate:,.0f} items/s"))
            puts = median_of(repeat, lambda r=replicas: producer_alone(url, count, r))
            rows.append((f"producer alone, sentinel set, --min-replicas {replicas}", f"{puts:,.0f} puts/s"))
            p50, p99 = lone_put_latency(url, lone, replicas)
            rows.append((f"one put at a time, min_replicas={replicas}", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"))
            print(f"  min_replicas {replicas}: done", file=sys.stderr, flush=True)
            _flush(url)
    width = max(len(name) for name, _ in rows)
    lines = [f"past one Redis: medians of {repeat} run(s), {count:,} items per end-to-end run"]
    lines += [f"{name.ljust(width)}  {figure}" for name, figure in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=20000, help="items per end-to-end run")
    parser.add_argument("--lone", type=int, default=2000, help="puts of the one-coroutine latency run")
    args = parser.parse_args()
    print(report(args.repeat, args.count, args.lone))
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
