"""``consumer --handler``: where the module is found, which callables are accepted, and that every shape of
coroutine-returning handler really handles each item (issue 10 item 3, issue 9 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asyncq import RedisQueue
from tests.harness import run

ITEMS = [{"data": f"{n:04x}"} for n in range(5)]


async def _put(redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many(ITEMS)


@pytest.mark.parametrize("shape", ["async_call_object", "decorated_without_wraps", "partial_of_coroutine"])
async def test_every_coroutine_shape_handles_each_item_once(
    redis: aioredis.Redis, redis_url: str, queue_name: str, shape: str
) -> None:
    await _put(redis_url, queue_name)
    done = run(
        "consumer", ["--queue", queue_name, "--handler", f"tests.shape_handlers:{shape}", "--drain"],
        redis_url=redis_url, FAULT_RECORD_KEY=queue_name, PYTHONWARNINGS="default",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(f"{queue_name}:counts")).items()}
    assert counts == {item["data"]: 1 for item in ITEMS}, done.stderr
    assert "RuntimeWarning" not in done.stderr and "never awaited" not in done.stderr, done.stderr
    assert "processed 5 items" in done.stdout and "failed 0" in done.stdout


JOBS = """
import os
import redis

def handle(item):
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        client.rpush(os.environ["JOBS_KEY"], item["data"])
"""


async def test_handler_module_next_to_the_consumer_is_found(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    await _put(redis_url, queue_name)
    done = run(
        "consumer", ["--queue", queue_name, "--handler", "jobs:handle", "--drain"],
        redis_url=redis_url, cwd=str(tmp_path), JOBS_KEY=f"{queue_name}:jobs",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(v.decode() for v in await redis.lrange(f"{queue_name}:jobs", 0, -1)) == [i["data"] for i in ITEMS]


@pytest.mark.parametrize(
    ("spec", "signature"), [("os:getcwd", "()"), ("tests.shape_handlers:takes_two", "(item, other)")]
)
def test_a_handler_that_cannot_take_one_item_is_refused_at_start(spec: str, signature: str) -> None:
    done = run("consumer", ["--handler", spec, "--drain"], redis_url="redis://127.0.0.1:1/0")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: --handler: {spec} cannot be called with one item: its signature is {signature} "
        "(it must accept one positional argument: the item)"
    ]


def test_a_handler_module_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no config')\n")
    done = run("consumer", ["--handler", "broken:handle"], redis_url="redis://127.0.0.1:1/0", cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: --handler: importing 'broken' failed: RuntimeError: no config"]
