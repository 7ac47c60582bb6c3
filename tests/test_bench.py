"""The benchmark script runs: ``bench/run.py --quick`` prints its table with a row for every case.

Not a timed test (the figures depend on the machine and on whatever else runs on it); the full benchmark
is ``make bench``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncq.tools.embedded import available

pytestmark = pytest.mark.timeout(240)

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_") and k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, str(BENCH), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_quick_benchmark_prints_every_case() -> None:
    if not available():
        pytest.skip("no redis-server on PATH: the benchmark starts its own")
    listed = _run("--list", timeout=30)
    assert listed.returncode == 0, listed.stderr
    cases = listed.stdout.splitlines()
    assert len(cases) >= 11, cases

    result = _run("--quick", timeout=200)

    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.splitlines()
    header = next((n for n, line in enumerate(lines) if line.startswith("case ")), None)
    assert header is not None, result.stdout
    assert all(column in lines[header] for column in ("items/s", "p50 ms", "p99 ms", "trips/item", "target"))
    rows = lines[header + 2 : header + 2 + len(cases)]
    for case, row in zip(cases, rows, strict=True):
        assert row.startswith(case), f"no row for {case!r} in:\n{result.stdout}"
        assert len(row.split()) > len(case.split()) + 3, f"row without figures: {row!r}"
    # The cases past one Redis: a cluster against a single server, and min_replicas on a Sentinel set.
    for name in ("e2e 1+1, single server", "e2e 1+1, 3-master cluster", "one put at a time, min_replicas=1"):
        assert any(line.startswith(name) and line.split()[-1] in ("items/s", "ms") for line in lines), result.stdout
    # One queue over 1 and 6 shards of a 3-master cluster (bench/shards.py): items/s, then µs and commands per
    # item on each master.
    for name in ("1 shard ", "6 shards ", "6 shards, 1,000/s offered"):
        row = next((line for line in lines if line.startswith(name)), "")
        assert row.count("µs") == 4 and row.count("cmds") == 4, f"no shards row {name!r} in:\n{result.stdout}"
