"""Benchmark one queue spread over shards (issue 13): 1 shard against 6 on a local 3-master cluster.

    python bench/shards.py [--repeat N] [--count N] [--consumers N]

The cluster is plain ``redis-server`` processes on loopback, no replicas (tests/ha.py). Each run: ``--consumers``
consumer processes (``--work 0``) and one producer process (30-character payloads) with ``--shards``, as real CLI
processes; items/s is the producer's, from its first put to ``join()`` returning. Per master, over the same run:
the Redis CPU per item (``INFO cpu`` used_cpu_sys + used_cpu_user, delta over the run, divided by the items: µs)
and the commands per item (``INFO commandstats`` after ``CONFIG RESETSTAT``, the commands scripts run included).
So the spread of the server load shows: with 1 shard one master does all the work, with 6 each does its part.
Then the same at an offered load (``--offered`` items/s, ``--count`` / 10 items): a mostly empty queue, where
each item costs a claim of its own, and on a sharded queue wakes every idle consumer (``ready``).

Shard ``i`` of N hashes into the i-th N-th of the slot range and the masters of a fresh cluster own even runs of
slots, so the 6 shards sit two on each master; the table says which master holds which shard.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.ha: the servers the tests start, reused here

from asyncq.core.keys import shard_keys  # noqa: E402
from tests.ha import ClusterNode, LocalCluster  # noqa: E402

BIN = Path(sys.executable).parent
NAMES = {1: "shards1", 6: "shards6"}  # a queue per layout: the shard count is recorded on first use
NOT_COUNTED = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_cluster|nodes", "cmdstat_cluster|info")


@dataclass
class Run:
    """One end-to-end run: items/s, and per master port µs of Redis CPU and commands, per item."""

    rate: float
    cpu_us: dict[int, float] = field(default_factory=dict)
    cmds: dict[int, float] = field(default_factory=dict)


def _env(url: str, queue: str, shards: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_") and k != "REDIS_URL"}
    env.update(REDIS_URL=url, ASYNCQ_QUEUE=queue, ASYNCQ_SHARDS=str(shards), PYTHONUNBUFFERED="1")
    return env


def _cpu(node: ClusterNode) -> float:
    with node.client() as c:
        info = c.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _commands(node: ClusterNode) -> int:
    with node.client() as c:
        stats = c.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if isinstance(v, dict) and k not in NOT_COUNTED)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _heartbeats(cluster: LocalCluster, queue: str, shards: int) -> int:
    home = shard_keys(queue, shards)[0]
    with cluster.master_of(home.queue).client() as c:
        return sum(1 for _ in c.scan_iter(match=home.heartbeat_pattern, count=1000))


def end_to_end(cluster: LocalCluster, shards: int, count: int, consumers: int, rate: int = 0) -> Run:
    """One run; ``rate`` > 0 offers that many items/s (a mostly empty queue) instead of as fast as it goes."""
    queue = NAMES.get(shards, f"shards{shards}")
    masters = cluster.masters
    for node in masters:
        with node.client() as c:
            c.flushall()
    env = _env(cluster.url, queue, shards)
    procs = [
        subprocess.Popen(
            [str(BIN / "consumer"), "--work", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(consumers)
    ]
    try:
        _wait(lambda: _heartbeats(cluster, queue, shards) >= consumers, 60, f"{consumers} consumers to register")
        for node in masters:
            with node.client() as c:
                c.config_resetstat()
        cpu = {node.port: _cpu(node) for node in masters}
        done = subprocess.run(
            [str(BIN / "producer"), "-n", str(count), "--size", "30", "--rate", str(rate)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"producer failed ({done.returncode}): {done.stderr[-2000:]}")
        used = {node.port: (_cpu(node) - cpu[node.port]) * 1e6 / count for node in masters}
        cmds = {node.port: _commands(node) / count for node in masters}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    seconds = float(re.search(r"all processed after ([\d.]+) s", done.stdout + done.stderr).group(1))  # type: ignore[union-attr]
    return Run(count / seconds, used, cmds)


def _placement(cluster: LocalCluster, shards: int) -> dict[int, list[int]]:
    """Master port -> the shards whose slots it owns."""
    where: dict[int, list[int]] = {node.port: [] for node in cluster.masters}
    for keys in shard_keys(NAMES.get(shards, f"shards{shards}"), shards):
        where[cluster.master_of(keys.queue).port].append(keys.index)
    return where


def report(repeat: int, count: int, consumers: int = 2, offered: int = 1000) -> str:
    """Run every case on one cluster: 1 and 6 shards as fast as they go, then at ``offered`` items/s (``count``
    / 10 items); the table as text."""
    rows: list[list[str]] = []
    cases = [(1, 0), (6, 0), (1, offered), (6, offered)]
    with LocalCluster(masters=3, replicas=0) as cluster:
        ports = sorted(node.port for node in cluster.masters)
        letters = {port: "ABC"[n] for n, port in enumerate(ports)}
        for shards, offer in cases:
            items = count // 10 if offer else count
            runs = [end_to_end(cluster, shards, items, consumers, offer) for _ in range(repeat)]
            rate = statistics.median(r.rate for r in runs)
            where = _placement(cluster, shards)
            name = f"{shards} shard{'s' if shards > 1 else ''}" + (f", {offer:,}/s offered" if offer else "")
            cells = [name, f"{rate:,.0f}"]
            for port in ports:
                cpu = statistics.median(r.cpu_us[port] for r in runs)
                cmds = statistics.median(r.cmds[port] for r in runs)
                held = ",".join(map(str, where[port])) or "-"
                cells.append(f"{cpu:5.1f} µs {cmds:4.2f} cmds [{held}]")
            total_cpu = statistics.median(sum(r.cpu_us.values()) for r in runs)
            total_cmds = statistics.median(sum(r.cmds.values()) for r in runs)
            cells.append(f"{total_cpu:5.1f} µs {total_cmds:4.2f} cmds")
            rows.append(cells)
            print(f"  {name}: done", file=sys.stderr, flush=True)
    header = ["queue", "items/s", *(f"master {letters[p]} per item [shards]" for p in ports), "all masters per item"]
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        f"one queue over shards, 3-master cluster: 1 producer + {consumers} consumer processes, "
        f"medians of {repeat} run(s), {count:,} items per run; Redis CPU (INFO cpu) and commands per item by master"
    ]
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=20000, help="items per end-to-end run")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes")
    parser.add_argument("--offered", type=int, default=1000, help="items/s of the offered-load rows")
    args = parser.parse_args()
    print(report(args.repeat, args.count, args.consumers, args.offered))
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
