"""The queue vocabulary of issue 15 across processes, on a real Redis: delayed puts waking a consumer that did
not schedule them, keyed puts racing from two processes, priority order over two consumer processes, LIFO
order, and a shutdown that ends consumers in other processes."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from asyncq import RedisLifoQueue, RedisPriorityQueue, RedisQueue
from asyncq.core.keys import Keys
from asyncq.core.kinds import queue_class
from tests.harness import Proc, async_wait_until, start

pytestmark = pytest.mark.timeout(120)


def helper(role: str, args: list[str], redis_url: str, tmp_path: Path, name: str) -> Proc:
    return start("python", ["-m", "tests.vocab_procs", role, *args], redis_url, tmp_path, name)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def wait_consumers(redis: aioredis.Redis, name: str, count: int, keys: Keys | None = None) -> None:
    pattern = (keys or Keys(name)).heartbeat_pattern

    async def alive() -> bool:
        return len([k async for k in redis.scan_iter(match=pattern)]) >= count

    await async_wait_until(alive, 30, f"{count} consumer heartbeat(s)")


@pytest.mark.parametrize("kind", ["fifo", "priority", "sharded"])
async def test_a_delayed_item_wakes_a_consumer_of_another_process_in_time(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path, kind: str
) -> None:
    """Never before its due time, and (median of several) within 50 ms after it, on Redis's clock. The
    consumer is idle (in its blocking pop, or waiting for a notification) when each item is scheduled; the
    put comes from this process. (Measured here: 2-5 ms.)"""
    out = tmp_path / "consumed.jsonl"
    shards = 3 if kind == "sharded" else 1
    kind = "fifo" if kind == "sharded" else kind
    async with queue_class(kind)(queue_name, url=redis_url, shards=shards) as q:
        await q.shards.check_layout()  # recorded before the consumer (a helper of one shard) opens it
        args = [queue_name, kind, str(out), "0", str(shards)]
        consumer = helper("consume", args, redis_url, tmp_path, "consumer")
        await wait_consumers(redis, queue_name, 1, q.shards.home.keys)
        lateness: list[float] = []
        for n in range(7):
            item: Any = {"n": n} if kind == "fifo" else (n, {"n": n})
            assert await q.put(item, delay=0.3 + 0.05 * n)
            [(_, due_ms)] = await _earliest(redis, q)
            await async_wait_until(lambda n=n: len(lines(out)) > n, 10, f"delayed item {n} handled")
            lateness.append(lines(out)[n]["at_ms"] - due_ms)
        await q.join()
        await q.shutdown()
    assert consumer.wait(30) == 0, consumer.describe()
    assert min(lateness) >= 0, f"handed out before its time: {lateness}"
    # 50 ms is the promise; the median absorbs a scheduling hiccup of this shared 2-core machine, and the
    # slowest one may take longer (not asserted beyond a generous bound).
    assert statistics.median(lateness) <= 50, lateness
    assert max(lateness) <= 500, lateness
    print(f"lateness after the due time (ms): {[round(x, 1) for x in lateness]}")


async def test_a_key_put_twice_from_two_processes_at_once_is_delivered_once(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    count = 200
    outs = [tmp_path / f"put{i}.json" for i in range(2)]
    putters = [
        helper("put-keys", [queue_name, str(count), str(o)], redis_url, tmp_path, f"put{i}") for i, o in enumerate(outs)
    ]
    # Both wait on the go list; one push releases both at once.
    await async_wait_until(lambda: _clients_blocked(redis), 30, "both putters waiting for go")
    await redis.rpush(f"{queue_name}:go", "go", "go")
    for putter in putters:
        assert putter.wait(30) == 0, putter.describe()
    accepted = [set(json.loads(o.read_text())["accepted"]) for o in outs]
    assert not accepted[0] & accepted[1], "a key was accepted by both processes"
    assert accepted[0] | accepted[1] == {f"k{i}" for i in range(count)}
    out = tmp_path / "consumed.jsonl"
    async with RedisQueue[Any](queue_name, url=redis_url) as q:
        assert await q.unfinished() == count
        consumer = helper("consume", [queue_name, "fifo", str(out), "20"], redis_url, tmp_path, "consumer")
        await q.join()
        # Done: the keys are free again (no dedup_ttl), so the same key is put once more (scheduled, so that
        # the consumer cannot finish it before the next put looks).
        assert await q.put({"again": True}, key="k0", delay=60) is True
        assert await q.put({"again": True}, key="k0") is False
        assert await q.shutdown(immediate=True) == 1
        await q.join()
    assert consumer.wait(30) == 0, consumer.describe()
    seen = [line["payload"]["key"] for line in lines(out) if "payload" in line and "key" in line["payload"]]
    assert sorted(seen) == sorted(f"k{i}" for i in range(count)), "each key delivered exactly once"


async def _earliest(redis: aioredis.Redis, q: RedisQueue[Any]) -> list[tuple[bytes, float]]:
    for part in q.shards.parts:
        found: list[tuple[bytes, float]] = await redis.zrange(part.keys.delayed, 0, 0, withscores=True)
        if found:
            return found
    return []


async def _clients_blocked(redis: aioredis.Redis) -> bool:
    info = await redis.info("clients")
    return int(info["blocked_clients"]) >= 2


async def test_priority_order_holds_across_two_consumer_processes(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    count = 120
    async with RedisPriorityQueue[dict[str, int]](queue_name, url=redis_url) as q:
        # Put before any consumer runs: then every FETCH takes the lowest priorities waiting.
        entries = [((n * 7) % 5, {"n": n}) for n in range(count)]
        for entry in entries:
            await q.put(entry)
        outs = [tmp_path / f"c{i}.jsonl" for i in range(2)]
        consumers = [
            helper("consume", [queue_name, "priority", str(o)], redis_url, tmp_path, f"c{i}")
            for i, o in enumerate(outs)
        ]
        await q.join()
        await q.shutdown()
    for c in consumers:
        assert c.wait(30) == 0, c.describe()
    got = [[line["payload"] for line in lines(o) if "payload" in line] for o in outs]
    assert sum(map(len, got)) == count
    for mine in got:
        # Each process's items come lowest priority first, equal priorities in put order.
        assert mine == sorted(mine, key=lambda p: (p[0], p[1]["n"])), mine
    merged = sorted((line for o in outs for line in lines(o) if "payload" in line), key=lambda x: x["at_ms"])
    priorities = [line["payload"][0] for line in merged]
    # Across the two processes (ordered by handler start on Redis's clock) a higher priority never starts
    # before every lower one was taken; two consumers may start neighbours a hair apart, hence "by claim".
    assert sorted(priorities) == [p for p, _ in sorted(entries, key=lambda e: (e[0], e[1]["n"]))]
    inversions = sum(1 for a, b in itertools.pairwise(priorities) if a > b)
    assert inversions <= 2, priorities


async def test_lifo_order_in_another_process(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    async with RedisLifoQueue[int](queue_name, url=redis_url) as q:
        for n in range(50):
            await q.put(n)
        out = tmp_path / "c.jsonl"
        consumer = helper("consume", [queue_name, "lifo", str(out)], redis_url, tmp_path, "c")
        await q.join()
        await q.shutdown()
    assert consumer.wait(30) == 0, consumer.describe()
    assert [line["payload"] for line in lines(out) if "payload" in line] == list(range(49, -1, -1))


async def test_shutdown_ends_idle_consumers_of_other_processes(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    consumers = [
        start("consumer", ["--queue", queue_name, "--work", "0"], redis_url, tmp_path, f"consumer{i}") for i in range(2)
    ]
    await wait_consumers(redis, queue_name, 2)
    async with RedisQueue[Any](queue_name, url=redis_url) as q:
        await q.put_many(range(20))
        await q.join()
        assert await q.shutdown() == 0
        with pytest.raises(Exception) as refused:
            await q.put(1)
        assert type(refused.value).__name__ == "QueueShutDown"
    for c in consumers:
        assert c.wait(30) == 0, c.describe()
        assert "processed" in c.stdout(), c.describe()
