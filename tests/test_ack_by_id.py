"""Acknowledging sends the item's id, not the item: what Redis receives for an ack does not grow with the
payload, whether the item came in a batch (the processing hash) or from a blocking pop (the list)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.harness import async_wait_until

BIG = "x" * (256 * 1024)


async def _blocked(redis: aioredis.Redis) -> bool:
    return any(client.get("cmd") == "blmove" for client in await redis.client_list())


async def _received(redis: aioredis.Redis) -> int:
    return int((await redis.info("stats"))["total_net_input_bytes"])


async def test_a_batch_of_big_items_is_acknowledged_by_id(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[str](queue_name, url=redis_url, max_item_bytes=1 << 20) as q:
        await q.put_many([BIG] * 10)
        messages = [await q.get_message() for _ in range(10)]
        before = await _received(redis)
        for message in messages:
            q.ack(message)
        await q.flush()
        sent = await _received(redis) - before
        assert sent < 10 * 1024, f"acknowledging 10 items of 256 KiB sent {sent} bytes to Redis"
        assert await q.unfinished() == 0
        assert await redis.hlen(Keys(queue_name).held(q.consumer_id)) == 0


async def test_an_item_from_a_blocking_pop_is_acknowledged_by_id(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[str](queue_name, url=redis_url, max_item_bytes=1 << 20) as q:
        waiting = asyncio.create_task(q.get_message())
        keys = Keys(queue_name)
        await async_wait_until(lambda: _blocked(redis), 10, "the fetcher blocked on its pop of the empty queue")
        await q.put(BIG)
        message = await asyncio.wait_for(waiting, 10)
        assert await redis.llen(keys.processing(q.consumer_id)) == 1  # the pop moved it to the list
        before = await _received(redis)
        q.ack(message)
        await q.flush()
        sent = await _received(redis) - before
        assert sent < 4 * 1024, f"acknowledging one item of 256 KiB sent {sent} bytes to Redis"
        assert await redis.llen(keys.processing(q.consumer_id)) == 0 and await q.unfinished() == 0
