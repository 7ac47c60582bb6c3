"""A put whose reply is lost is enqueued once, with and without an idempotency key (issue 15).

The batch is resent with its sequence number and PUT returns the reply it stored for it (how many it took and,
for keyed or delayed puts, which were added): a keyed put whose first attempt did add its item returns True,
not False for finding its own key. The lost replies are real (``tests.proxy``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from asyncq import RedisPriorityQueue, RedisQueue
from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import state
from tests.proxy import Proxy

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def direct(private_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(private_redis.url)
    yield c
    c.close()


async def test_keyed_and_plain_puts_whose_reply_is_lost_are_enqueued_once(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str
) -> None:
    keys = Keys(queue_name)
    with Proxy(private_redis.port) as proxy:
        async with RedisQueue[Any](queue_name, url=proxy.url) as q:
            for n in range(4):
                proxy.lose_replies(1)
                async with asyncio.timeout(30):
                    assert await q.put({"n": n}, key=f"order-{n}") is True  # its own first attempt added it
                assert proxy.lost == n + 1
            proxy.lose_replies(1)
            async with asyncio.timeout(30):
                assert await q.put({"n": "plain"}) is True
                assert await q.put({"n": "later"}, delay=60) is True
            assert proxy.lost >= 5
            proxy.disarm()
            assert await q.put({"n": 0}, key="order-0") is False  # still unfinished
    left = state(direct, keys)
    assert left["queue"] == 5 and left["totals"].get("enqueued") == 6 and left["unfinished"] == 6, left
    assert direct.zcard(keys.delayed) == 1
    assert direct.hlen(keys.dedup) == 4


async def test_a_priority_put_whose_reply_is_lost_is_enqueued_once(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str
) -> None:
    with Proxy(private_redis.port) as proxy:
        async with RedisPriorityQueue[str](queue_name, url=proxy.url) as q:
            for n in range(3):
                proxy.lose_replies(1)
                async with asyncio.timeout(30):
                    await q.put((n, f"item-{n}"))
            proxy.disarm()
            assert proxy.lost == 3
            assert await q.qsize() == 3
            assert [await q.get() for _ in range(3)] == [(0, "item-0"), (1, "item-1"), (2, "item-2")]
            for _ in range(3):
                q.task_done()
            await asyncio.wait_for(q.join(), 10)
