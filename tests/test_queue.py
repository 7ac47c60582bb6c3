"""RedisQueue keeps asyncio.Queue's contract against a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from asyncq import ItemTooLarge, QueueClosed, RedisQueue
from asyncq.core.envelope import decode
from asyncq.core.keys import Keys
from tests.harness import async_wait_until


async def test_fifo_put_get_task_done_join(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        for n in range(20):
            await q.put({"n": n})
        assert await q.qsize() == 20
        got = []
        for _ in range(20):
            got.append((await q.get())["n"])
            q.task_done()
        await asyncio.wait_for(q.join(), 5)
        assert got == list(range(20))
        assert await q.empty()
        assert await q.unfinished() == 0
        assert await redis.exists(Keys(queue_name).processing(q.consumer_id), Keys(queue_name).held(q.consumer_id)) == 0


async def test_items_keep_their_json_shape(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    items = [[], {}, [1, "a", None], {"nested": {"x": [True, 1.5]}}, "text", 0, None, ["tuple-like", 1.25]]
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many(items)
        assert [await q.get() for _ in items] == items


async def test_task_done_too_often_raises(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put(1)
        await q.get()
        q.task_done()
        with pytest.raises(ValueError, match="more times"):
            q.task_done()


async def test_bad_items_never_reach_redis(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url, max_item_bytes=1000) as q:
        with pytest.raises(TypeError, match="JSON-serialisable"):
            await q.put({"when": object()})
        with pytest.raises(ItemTooLarge, match="exceeds the limit of 1000 bytes"):
            await q.put("x" * 2000)
        with pytest.raises(TypeError):
            await q.put(float("nan"))
    assert await redis.llen(Keys(queue_name).queue) == 0
    assert await redis.get(Keys(queue_name).unfinished) is None


async def test_join_waits_for_the_work_of_another_client(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    """join() on one RedisQueue waits for task_done() on another (two clients of one Redis, in this process)."""
    async with RedisQueue(queue_name, url=redis_url) as producer, RedisQueue(queue_name, url=redis_url) as worker:
        await producer.put_many(range(5))
        joined = asyncio.create_task(producer.join())
        for left in range(4, -1, -1):
            await worker.get()
            worker.task_done()

            async def reads(n: int = left) -> bool:
                return await producer.unfinished() == n

            # the acknowledgement reached Redis: the counter join() watches reads `left`, and join() saw it
            await async_wait_until(reads, 5, f"unfinished to read {left}")
            if left:
                assert not joined.done(), f"join() returned with {left} item(s) unfinished"
        await asyncio.wait_for(joined, 5)


async def test_cancelled_gets_lose_nothing(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    """The seed cancels consumers blocked in get(): many racing cancels, and every item still arrives once."""
    total = 300
    async with RedisQueue(queue_name, url=redis_url) as q:
        received: list[int] = []

        async def getter() -> None:
            received.append(await q.get())
            q.task_done()

        putter = asyncio.create_task(q.put_many(range(total)))
        while len(received) < total:
            tasks = [asyncio.create_task(getter()) for _ in range(10)]
            await asyncio.sleep(0.001)  # on purpose: let the getters get going, then cancel half mid-flight
            for task in tasks[::2]:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.2)
            for task in tasks:
                task.cancel()  # getters left waiting once everything arrived
            await asyncio.gather(*tasks, return_exceptions=True)
        await putter
        await asyncio.wait_for(q.join(), 10)
        assert sorted(received) == list(range(total))


async def test_close_gives_back_what_was_claimed(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as producer:
        await producer.put_many(range(50))
    q = RedisQueue(queue_name, url=redis_url, prefetch=20)
    assert await q.get() == 0  # claims a batch: the rest sit in this process's buffer
    await q.close()
    keys = Keys(queue_name)
    assert await redis.exists(keys.processing(q.consumer_id), keys.held(q.consumer_id)) == 0
    assert await redis.exists(keys.heartbeat(q.consumer_id)) == 0
    # nothing acknowledged: all 50 are back, in order, the unacknowledged one first
    values = [decode(v).payload for v in await redis.lrange(keys.queue, 0, -1)]
    assert values[::-1] == list(range(50))
    with pytest.raises(QueueClosed):
        await q.get()


async def test_maxsize_backpressure_between_two_clients(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    """A full queue blocks put() on one RedisQueue until a get() on another makes room (one process)."""
    async with (
        RedisQueue(queue_name, url=redis_url, maxsize=3) as producer,
        RedisQueue(queue_name, url=redis_url) as consumer,
    ):
        await producer.put_many([1, 2, 3])
        assert await producer.full()
        blocked = asyncio.create_task(producer.put(4))
        # a negative check needs a window: the put stays blocked for 0.3 s (it returns early if it wrongly ends)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(blocked), 0.3)
        assert await producer.qsize() == 3
        assert await consumer.get() == 1
        await asyncio.wait_for(blocked, 3)  # woken by the consumer's claim, not by the 1 s re-check alone
        assert [await consumer.get() for _ in range(3)] == [2, 3, 4]


async def test_garbage_goes_to_dead_letters(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    keys = Keys(queue_name)
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put("good-1")
        await redis.lpush(keys.queue, b"not json", b'{"json": "but no envelope"}', b"\xff\xfe")
        await q.put("good-2")
        assert await asyncio.wait_for(q.get(), 5) == "good-1"
        q.task_done()
        assert await asyncio.wait_for(q.get(), 5) == "good-2"
        q.task_done()
        await asyncio.wait_for(q.join(), 5)
    records = [json.loads(r) for r in await redis.lrange(keys.dead, 0, -1)]
    assert len(records) == 3
    reasons = " | ".join(r["reason"] for r in records)
    assert "not JSON" in reasons
    assert "without the envelope fields" in reasons


async def test_wait_for_get_then_task_done_from_caller(redis_url: str, redis: aioredis.Redis, queue_name: str) -> None:
    """Under wait_for on 3.11, get() runs in another task; task_done() still finds the item."""
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put("a")
        assert await asyncio.wait_for(q.get(), 5) == "a"
        q.task_done()
        await asyncio.wait_for(q.join(), 5)


async def test_invalid_queue_name(redis_url: str) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        RedisQueue("bad name*", url=redis_url)


async def test_every_waiting_getter_is_served(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    """Items arriving while several getters wait (no prefetch) reach all of them, not only the first."""
    async with (
        RedisQueue(queue_name, url=redis_url, block_timeout=30, prefetch=0) as consumer,
        RedisQueue(queue_name, url=redis_url) as producer,
    ):
        blocked_before = (await redis.info("clients"))["blocked_clients"]
        getters = [asyncio.create_task(consumer.get()) for _ in range(3)]

        async def fetcher_blocked() -> bool:
            return bool((await redis.info("clients"))["blocked_clients"] > blocked_before)

        # all three wait; the fetcher is in its blocking pop at the server
        await async_wait_until(fetcher_blocked, 5, "the fetcher's blocking pop")
        await producer.put_many(["a", "b", "c"])
        # with a 30 s pop timeout, a getter the fetcher forgot would wait far past this bound
        assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 5)) == ["a", "b", "c"]
