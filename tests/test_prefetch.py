"""Adaptive prefetch on a real Redis: with a backlog a consumer claims in batches; on a short queue it claims
only what its getters wait for, so ``qsize`` and the other consumers still see the rest."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from asyncq import RedisQueue


async def _claims(redis: aioredis.Redis) -> int:
    """FETCH scripts run since the last reset: each pops with one RPOP (no other script or step does)."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_rpop", {}).get("calls", 0))


async def _drain(q: RedisQueue[int], count: int, workers: int) -> list[int]:
    got: list[int] = []

    async def work() -> None:
        while len(got) < count:
            try:
                item = await asyncio.wait_for(q.get(), 5)
            except TimeoutError:
                return
            got.append(item)
            q.task_done()

    await asyncio.gather(*(work() for _ in range(workers)))
    return got


async def test_auto_claims_a_backlog_in_batches(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    calls: dict[int | str, int] = {}
    for prefetch in (0, "auto"):
        async with RedisQueue[int](f"{queue_name}-{prefetch}", url=redis_url, prefetch=prefetch) as q:
            await q.put_many(list(range(5000)))
            await redis.config_resetstat()
            got = await _drain(q, 5000, workers=4)
            await q.join()
            calls[prefetch] = await _claims(redis)
            assert sorted(got) == list(range(5000))
    # prefetch 0 claims for the 4 waiting getters at a time; auto grows towards batches of 500 (about 60
    # items a claim here: it claims from half empty, and stops growing once the buffer no longer runs dry)
    assert calls[0] >= 5000 / 4 and calls["auto"] <= 5000 / 10, calls


async def test_auto_does_not_claim_ahead_of_a_short_queue(
    redis: aioredis.Redis, redis_url: str, queue_name: str
) -> None:
    async with RedisQueue[int](queue_name, url=redis_url, prefetch="auto") as q:
        await q.put_many([1, 2, 3])
        assert await q.get() == 1  # its claim left 2 waiting while a getter waited: the prefetch grows ...
        q.task_done()
        await q.put(4)
        assert await q.get() == 2
        q.task_done()
        # ... but it claims only when a getter asks or the buffer is below it, and a claim takes only what
        # waits: everything is still delivered in order, once each.
        assert [await q.get() for _ in range(2)] == [3, 4]
        q.task_done()
        q.task_done()
        await asyncio.wait_for(q.join(), 5)
        assert await q.qsize() == 0
