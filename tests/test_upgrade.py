"""A queue written by the previous version (0.1: JSON envelopes, processing lists) drains under this one: what
waited is delivered, what a dead 0.1 consumer had claimed is recovered and delivered, keys and retries work,
and every count comes out right."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from asyncq import RedisQueue, RetryPolicy
from asyncq.core.keys import Keys
from tests.harness import async_wait_until


def _old(n: int, attempts: int = 0, key: str | None = None) -> bytes:
    keyed = f',"key":{json.dumps(key)}' if key else ""
    return (
        f'{{"attempts":{attempts},"id":"5f0c1b2a9e3d-{n:08x}"{keyed},"enqueued_at":1732512345.5,"payload":{{"n":{n}}}}}'
    ).encode()


async def test_a_queue_of_the_previous_version_drains(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    keys = Keys(queue_name)
    dead_consumer = "oldhost-123-abcdef"
    # What 0.1 left: 4 waiting (one put with a key), 2 claimed by a consumer that died (its heartbeat gone).
    await redis.lpush(keys.queue, *[_old(n) for n in range(3)], _old(3, key="order-3"))
    await redis.hset(keys.dedup, "order-3", "5f0c1b2a9e3d-00000003|0")
    await redis.lpush(keys.processing(dead_consumer), _old(4, attempts=1), _old(5))
    await redis.sadd(keys.consumers, dead_consumer)
    await redis.set(keys.unfinished, 6)
    await redis.hset(keys.meta, "shards", 1)
    policy = RetryPolicy(max_deliveries=5, base=0.05, cap=0.05)
    async with RedisQueue[dict[str, int]](queue_name, url=redis_url, heartbeat_interval=0.2, retry=policy) as q:
        seen: dict[int, int] = {}
        retried = False
        while sum(seen.values()) < 7:  # 6 items, one of them delivered twice
            message = await asyncio.wait_for(q.get_message(), 15)
            n = message.payload["n"]
            seen[n] = seen.get(n, 0) + 1
            if n == 0 and not retried:
                retried = True
                await q.retry(message, 0.05)  # a retry of an old envelope bumps and redelivers it
                continue
            if n == 4:
                assert message.attempts == 2  # claimed once by 0.1, recovered (bumped) once here
            q.ack(message)
        await asyncio.wait_for(q.join(), 10)
        assert seen == {0: 2, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
        assert await q.unfinished() == 0
        assert await redis.exists(keys.processing(dead_consumer)) == 0
        await async_wait_until(lambda: _gone(redis, keys, dead_consumer), 5, "the dead consumer unregistered")
        assert await redis.hget(keys.dedup, "order-3") is None  # its key was freed when it was done
        assert await q.put({"n": 6}, key="order-3") is True
        totals = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.totals)).items()}
        assert totals["recovered"] == 2 and totals["retried"] == 1


async def _gone(redis: aioredis.Redis, keys: Keys, consumer: str) -> bool:
    return not await redis.sismember(keys.consumers, consumer)
