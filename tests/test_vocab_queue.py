"""The queue vocabulary of issue 15 in one process, against a real Redis: keyed and delayed puts, priority and
LIFO queues with the whole contract, shutdown, get_nowait/put_nowait, codecs, kinds recorded in Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from asyncq import (
    PydanticCodec,
    QueueKindError,
    QueueShutDown,
    RedisLifoQueue,
    RedisPriorityQueue,
    RedisQueue,
    RetryPolicy,
)
from asyncq.core.keys import Keys
from asyncq.tools import deadletters, snapshot
from asyncq.tools.reset import reopen
from tests.harness import async_wait_until

pytestmark = pytest.mark.timeout(60)


async def redis_ms(redis: aioredis.Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) * 1000 + float(micros) / 1000


async def test_a_keyed_put_is_refused_while_its_item_is_unfinished(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    policy = RetryPolicy(max_deliveries=2, base=0.05, cap=0.05)
    async with RedisQueue[dict[str, int]](queue_name, url=redis_url, retry=policy) as q:
        assert await q.put({"n": 1}, key="order-42") is True
        assert await q.put({"n": 2}, key="order-42") is False  # waiting
        message = await q.get_message()
        assert message.key == "order-42"
        assert await q.put({"n": 3}, key="order-42") is False  # claimed
        await q.retry(message, 0.2)
        assert await q.put({"n": 4}, key="order-42") is False  # retrying
        again = await q.get_message()
        await q.dead_letter(again, "given up")
        assert await q.put({"n": 5}, key="order-42") is True  # done (a dead letter): the key is free
        assert await q.unfinished() == 1
        assert (await q.get())["n"] == 5
        q.task_done()
        await q.join()
        assert await q.put({"n": 6}, key="order-42") is True
        assert await q.put({"n": 7}, key="other") is True
        assert await q.qsize() == 2
        # put_many with keys: a key twice in one batch is put once, an unfinished one not at all.
        assert await q.put_many([{"n": 8}, {"n": 9}, {"n": 10}], keys=["x", "x", "order-42"]) == 1
        assert await q.qsize() == 3
        assert (await snapshot.take(redis, queue_name)).totals["enqueued"] == 5


async def test_dedup_ttl_remembers_a_key_after_its_item_is_done(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[str](queue_name, url=redis_url, dedup_ttl=0.5) as q:
        assert await q.put("a", key="k")
        assert await q.get() == "a"
        q.task_done()
        await q.join()
        done_at = await redis_ms(redis)
        assert await q.put("b", key="k") is False  # done less than dedup_ttl ago
        until = float(await redis.zscore(Keys(queue_name).dedup_done, "k") or 0)
        assert until >= done_at + 400
        await async_wait_until(lambda: _after(redis, until), 5, "the dedup window to pass")
        assert await q.put("c", key="k") is True
        assert await q.put("d", key="k", dedup_ttl=0) is False  # unfinished again
        assert await q.qsize() == 1


async def _after(redis: aioredis.Redis, ms: float) -> bool:
    return await redis_ms(redis) > ms


async def test_keys_of_a_sharded_queue_always_go_to_the_same_shard(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[int](queue_name, url=redis_url, shards=4) as q:
        results = [await q.put(n, key=f"k{n % 10}") for n in range(40)]
        assert results.count(True) == 10
        assert await q.qsize() == 10


async def test_a_delayed_put_waits_in_redis_and_counts_for_join(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[str](queue_name, url=redis_url) as q:
        await q.put("later", delay=0.4)
        await q.put("now")
        snap = await snapshot.take(redis, queue_name)
        assert (snap.depth, snap.scheduled, snap.unfinished) == (1, 1, 2)
        assert snap.to_json()["scheduled"] == 1
        assert await q.get() == "now"
        q.task_done()
        started = asyncio.get_running_loop().time()
        assert await q.get() == "later"
        assert asyncio.get_running_loop().time() - started >= 0.3
        joining = asyncio.create_task(q.join())
        await asyncio.sleep(0)
        assert not joining.done()
        q.task_done()
        await asyncio.wait_for(joining, 5)
    with pytest.raises(ValueError, match="delay"):
        RedisQueue[str](queue_name, url=redis_url)._put_item("x", -1.0, None, None)


async def test_priority_queue_lowest_first_equal_in_put_order(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisPriorityQueue[str](queue_name, url=redis_url) as q:
        entries = [(3, "c1"), (1, "a1"), (2, "b1"), (1, "a2"), (-1.5, "z"), (3, "c2"), (1, "a3")]
        for entry in entries:
            await q.put(entry)
        assert await q.qsize() == len(entries)
        got = [await q.get() for _ in entries]
        assert got == [(-1.5, "z"), (1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (3, "c1"), (3, "c2")]
        for _ in entries:
            q.task_done()
        await asyncio.wait_for(q.join(), 5)
        with pytest.raises(TypeError, match="pairs"):
            await q.put("no priority")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="priority"):
            await q.put(("high", "x"))  # type: ignore[arg-type]


async def test_priority_queue_maxsize_retry_dead_letters_and_recovery(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    policy = RetryPolicy(max_deliveries=2, base=0.05, cap=0.05)
    async with RedisPriorityQueue[str](queue_name, url=redis_url, maxsize=2, retry=policy) as q:
        await q.put((5, "x"))
        await q.put((1, "y"))
        assert await q.full()
        waiting = asyncio.create_task(q.put((0, "z")))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # maxsize holds for a priority queue too
        first = await q.get_message()
        assert first.payload == [1, "y"]
        await asyncio.wait_for(waiting, 5)
        await q.retry(first, 0.05)  # back to the head of priority 1, after its delay
        [(_, due)] = await redis.zrange(Keys(queue_name).delayed, 0, 0, withscores=True)
        await async_wait_until(lambda: _after(redis, due), 5, "the retry to fall due")
        assert await q.get() == (0, "z")
        q.task_done()
        again = await q.get_message()
        assert (again.payload, again.attempts) == ([1, "y"], 1)
        await q.dead_letter(again, "no")
        [letter] = await deadletters.read(redis, queue_name, 10)
        result = await deadletters.requeue(redis, queue_name, None)
        assert result.requeued == [letter[1].id] if isinstance(letter, tuple) else result.requeued
        assert await q.get() == (1, "y")
        q.task_done()
        assert await q.get() == (5, "x")
        q.task_done()
        await asyncio.wait_for(q.join(), 5)
    # Recovery: a consumer that died holding items gives them back to their priority.
    async with RedisPriorityQueue[str](queue_name, url=redis_url, heartbeat_interval=0.2) as dying:
        await dying.put((2, "held"))
        await dying.put((9, "later"))
        assert await dying.get() == (2, "held")
        await dying.redis.delete(dying.keys.heartbeat(dying.consumer_id))
        dying._consuming.liveness._stop.set()  # type: ignore[union-attr]  # a process that stopped beating
        async with RedisPriorityQueue[str](queue_name, url=redis_url, heartbeat_interval=0.2) as other:
            got = await asyncio.wait_for(other.get(), 10)
            assert got == (9, "later") or got == (2, "held")
            second = await asyncio.wait_for(other.get(), 10)
            assert {got, second} == {(2, "held"), (9, "later")}


async def test_lifo_queue_newest_first(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisLifoQueue[int](queue_name, url=redis_url) as q:
        await q.put_many(range(5))
        await q.put(5)
        assert [await q.get() for _ in range(6)] == [5, 4, 3, 2, 1, 0]
        for _ in range(6):
            q.task_done()
        await asyncio.wait_for(q.join(), 5)


async def test_a_queue_is_opened_as_its_recorded_kind_only(redis_url: str, queue_name: str) -> None:
    async with RedisPriorityQueue[int](queue_name, url=redis_url) as q:
        await q.put((1, 1))
    async with RedisQueue[int](queue_name, url=redis_url) as wrong:
        with pytest.raises(QueueKindError, match="priority queue"):
            await wrong.put(1)


async def test_a_queue_of_the_previous_version_is_a_fifo_queue_and_drains(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    keys = Keys(queue_name)
    # What the previous version left: meta with the shard count only, envelopes in the list, counters.
    await redis.hset(keys.meta, "shards", 1)
    old = [b'{"attempts":0,"id":"old-%d","enqueued_at":1700000000.0,"payload":{"n":%d}}' % (n, n) for n in range(3)]
    await redis.lpush(keys.queue, *old)
    await redis.set(keys.unfinished, 3)
    with pytest.raises(QueueKindError):
        async with RedisLifoQueue[Any](queue_name, url=redis_url) as lifo:
            await lifo.get()
    async with RedisQueue[dict[str, int]](queue_name, url=redis_url) as q:
        assert [(await q.get())["n"] for _ in range(3)] == [0, 1, 2]
        for _ in range(3):
            q.task_done()
        await asyncio.wait_for(q.join(), 5)
    assert await redis.hget(keys.meta, "kind") == b"fifo"


async def test_shutdown_refuses_puts_and_ends_getters_once_empty(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[int](queue_name, url=redis_url) as q, RedisQueue[int](queue_name, url=redis_url) as other:
        await q.put_many([1, 2])
        assert await q.shutdown() == 0
        with pytest.raises(QueueShutDown):
            await other.put(3)  # another RedisQueue: Redis refuses it
        with pytest.raises(QueueShutDown):
            await other.put(4)  # known here now
        assert [await other.get(), await other.get()] == [1, 2]  # what waits is still handed out
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(other.get(), 10)  # empty: raises
        other.task_done()
        other.task_done()
        await asyncio.wait_for(q.join(), 5)
        assert (await snapshot.take(redis, queue_name)).shutdown == "drain"
    assert (await reopen(redis, queue_name)).was_shut_down
    async with RedisQueue[int](queue_name, url=redis_url) as q:
        assert await q.put(5)


async def test_shutdown_immediate_drops_what_waits_and_join_returns(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[int](queue_name, url=redis_url, prefetch=3) as q:
        await q.put_many(range(10))
        await q.put(99, delay=30)
        await q.put(100, key="k")
        held = await q.get()
        async with RedisQueue[int](queue_name, url=redis_url) as other:
            dropped = await other.shutdown(immediate=True)
        # What waited or was scheduled is dropped; this process's 3 prefetched items too, once it hears of
        # the shutdown (a notification, a moment later: until then its buffer is what it knows).
        assert dropped == 12 - 1 - 3
        session = q._consuming
        assert session is not None
        await async_wait_until(lambda: session.shutdown.known == "immediate", 10, "the shutdown to be heard")
        await async_wait_until(lambda: not session.fetcher.buffer, 10, "the prefetched items to be dropped")
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(q.get(), 10)
        q.task_done()  # the item in progress is still ours to finish
        await asyncio.wait_for(q.join(), 10)
        assert held == 0
        snap = await snapshot.take(redis, queue_name)
        assert (snap.depth, snap.scheduled, snap.unfinished, snap.shutdown) == (0, 0, 0, "immediate")
        assert snap.totals["dropped"] == dropped + 3
        assert await redis.hlen(Keys(queue_name).dedup) == 0


async def test_get_nowait_and_put_nowait(redis_url: str, queue_name: str) -> None:
    async with RedisQueue[int](queue_name, url=redis_url, prefetch=5, maxsize=3) as q:
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()  # nothing claimed yet (this first call starts consuming)
        q.put_nowait(1)
        q.put_nowait(2)
        await q.flush()
        # Both reached Redis (waiting, or already claimed by this process's prefetch: unfinished counts both).
        assert await q.unfinished() == 2
        got = []
        await async_wait_until(lambda: _take(q, got), 10, "items claimed into the local buffer")
        await async_wait_until(lambda: _take(q, got) or len(got) == 2, 10, "the second item")
        assert got == [1, 2]
        q.task_done()
        q.task_done()
    async with RedisQueue[int](queue_name, url=redis_url, maxsize=1) as full:
        await full.put(1)
        blocked = asyncio.create_task(full.put(2))
        await async_wait_until(lambda: full._puts.known_full, 10, "the put to find the queue full")
        with pytest.raises(asyncio.QueueFull):
            full.put_nowait(3)
        blocked.cancel()


def _take(q: RedisQueue[int], got: list[int]) -> bool:
    try:
        got.append(q.get_nowait())
    except asyncio.QueueEmpty:
        return False
    return True


class Order(BaseModel):
    id: int
    lines: list[str]


async def test_typed_items_through_a_pydantic_codec(redis_url: str, queue_name: str) -> None:
    async with RedisQueue[Order](queue_name, url=redis_url, codec=PydanticCodec(Order)) as q:
        await q.put(Order(id=42, lines=["a", "b"]))
        got = await q.get()
        assert isinstance(got, Order) and got == Order(id=42, lines=["a", "b"])
        q.task_done()
    async with RedisPriorityQueue[Order](queue_name + "-p", url=redis_url, codec=PydanticCodec(Order)) as pq:
        await pq.put((2, Order(id=2, lines=[])))
        await pq.put((1, Order(id=1, lines=[])))
        assert (await pq.get())[1].id == 1
