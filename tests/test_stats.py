"""``asyncq stats --json`` (run as a process) reports exactly what the test did to the queue."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from asyncq import RedisQueue
from tests.harness import run, start, wait_until

ROOT = Path(__file__).resolve().parent.parent


async def fail_every_third(item: Any) -> None:
    """A ``--handler`` for the consumer process below: items whose ``n`` is a multiple of 3 fail."""
    if item["n"] % 3 == 0:
        raise ValueError(f"item {item['n']} fails")


def stats(redis_url: str, queue: str) -> dict[str, Any]:
    done = run("asyncq", ["stats", "--queue", queue, "--json"], redis_url=redis_url, timeout=30)
    assert done.returncode == 0, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def totals(**nonzero: int) -> dict[str, int]:
    return {
        k: nonzero.get(k, 0) for k in ("enqueued", "processed", "failed", "retried", "dead", "recovered", "dropped")
    }


async def test_stats_of_an_empty_queue(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    figures = stats(redis_url, queue_name)
    assert figures["queue"] == queue_name
    assert (figures["depth"], figures["unfinished"], figures["dead"], figures["delayed"]) == (0, 0, 0, 0)
    assert figures["oldest_age"] is None
    assert figures["totals"] == totals()
    assert figures["consumers"] == []


async def test_stats_counts_puts_acks_retries_and_dead_letters(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    put_at = time.time()
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"n": n} for n in range(20)])
        got = [await q.get_message() for _ in range(9)]
        for message in got[:5]:
            q.ack(message)
        for message in got[5:8]:
            await q.dead_letter(message, "the test says so")
        await q.retry(got[8], delay=120)
        await q.flush()
    # close() gave back what this process had claimed and not finished: it waits again.
    figures = stats(redis_url, queue_name)
    assert figures["depth"] == 11
    assert figures["claimed"] == 0
    assert figures["delayed"] == 1
    assert figures["dead"] == 3
    assert figures["unfinished"] == 12  # 20 put - 5 done - 3 dead; the retrying one is not finished
    assert figures["totals"] == totals(enqueued=20, processed=5, failed=4, retried=1, dead=3)
    assert figures["oldest_age"] is not None and 0 < figures["oldest_age"] <= time.time() - put_at
    assert figures["consumers"] == []
    assert figures["orphaned"] == 0


async def test_stats_after_a_consumer_process_with_failures(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"n": n} for n in range(30)])
    consumer = run(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.test_stats:fail_every_third", "--max-deliveries", "1", "--drain"],
        redis_url=redis_url,
        timeout=60,
        PYTHONPATH=str(ROOT),
    )
    assert consumer.returncode == 0, consumer.stderr
    assert "processed 20 items" in consumer.stdout
    figures = stats(redis_url, queue_name)
    assert (figures["depth"], figures["unfinished"], figures["claimed"], figures["delayed"]) == (0, 0, 0, 0)
    assert figures["dead"] == 10
    assert figures["totals"] == totals(enqueued=30, processed=20, failed=10, dead=10)
    assert figures["consumers"] == []  # it left cleanly: its heartbeat is gone


async def test_stats_lists_a_running_consumer(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"n": n} for n in range(10)])
    args = ["--queue", queue_name, "--work", "60", "--concurrency", "2", "--prefetch", "0", "--grace", "0"]
    proc = start("consumer", [*args, "--heartbeat", "0.3"], redis_url, tmp_path, "consumer")
    try:
        wait_until(
            lambda: [c["in_progress"] for c in stats(redis_url, queue_name)["consumers"]] == [2],
            30,
            "the consumer to show 2 items in progress",
        )
        figures = stats(redis_url, queue_name)
        [view] = figures["consumers"]
        assert view["pid"] == proc.pid
        assert view["host"] == socket.gethostname()
        assert view["id"].startswith(f"{socket.gethostname()}-{proc.pid}-")
        assert (view["concurrency"], view["in_progress"], view["claimed"], view["processed"]) == (2, 2, 2, 0)
        assert 0 <= view["heartbeat_age"] < 3
        assert (figures["depth"], figures["claimed"], figures["in_progress"], figures["unfinished"]) == (8, 2, 2, 10)
    finally:
        code = proc.terminate()
    assert code == 0, proc.describe()
    figures = stats(redis_url, queue_name)
    assert figures["consumers"] == []
    assert (figures["depth"], figures["claimed"], figures["unfinished"]) == (10, 0, 10)
    assert figures["totals"] == totals(enqueued=10)
