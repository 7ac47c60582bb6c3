"""The decisive test: the seed's asyncq.py, with only its Queue swapped for a RedisQueue, runs unchanged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ADDED_LINE, ITEM_LINE, env

ROOT = Path(__file__).resolve().parent.parent
SEED_COPY = ROOT / "tests" / "seed" / "asyncq_redis.py"
SEED_PAGE = ROOT.parent / "shared" / "seed" / "000_1f318669f91f0107.txt"


def _seed_env(redis_url: str) -> dict[str, str]:
    return env(REDIS_URL=redis_url, PYTHONPATH=str(ROOT))


def _python(script: Path, *args: str, redis_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=_seed_env(redis_url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(120)
async def test_seed_runs_unchanged_in_one_process(redis_url: str, redis: object) -> None:
    proc = _python(SEED_COPY, "-p", "2", "-c", "5", redis_url=redis_url)
    out, err = proc.communicate(timeout=110)
    assert proc.returncode == 0, err
    added = ADDED_LINE.findall(out)
    consumed = ITEM_LINE.findall(out)
    assert added, out
    assert sorted(consumed) == sorted(added)  # every item added was consumed, exactly once
    assert re.search(r"Program completed in [0-9.]+ seconds\.", out)
    assert "Traceback" not in err


@pytest.mark.timeout(150)
async def test_seed_split_over_two_processes(redis_url: str, redis: object) -> None:
    consumers = _python(ROOT / "tests" / "seed" / "split_consumers.py", "5", redis_url=redis_url)
    producers = _python(ROOT / "tests" / "seed" / "split_producers.py", "2", redis_url=redis_url)
    try:
        p_out, p_err = producers.communicate(timeout=120)
    finally:
        consumers.terminate()
        c_out, c_err = consumers.communicate(timeout=30)
    assert producers.returncode == 0, p_err
    assert consumers.returncode == 0, c_err
    added = ADDED_LINE.findall(p_out)
    assert added and "joined at" in p_out
    # join() returned only once the other process had consumed everything that was added
    assert sorted(ITEM_LINE.findall(c_out)) == sorted(added)
    assert "joined at" in p_out.splitlines()[-1]


@pytest.mark.skipif(not SEED_PAGE.exists(), reason="the tutorial page is not beside this checkout")
def test_seed_copy_differs_only_in_the_queue() -> None:
    """tests/seed/asyncq_redis.py is the tutorial's program but for the import and the one Queue line."""
    lines = SEED_PAGE.read_text().splitlines()
    start = lines.index("# asyncq.py") - 1
    end = lines.index("```", start)
    original = lines[start:end]
    copy = SEED_COPY.read_text().splitlines()
    removed = [line for line in original if line not in copy]
    added = [line for line in copy if line not in original]
    assert removed == ["    q = asyncio.Queue()"]
    assert added == ["from asyncq import RedisQueue", "    q = RedisQueue()"]
