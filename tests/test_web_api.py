"""``asyncq web``'s JSON API as a script uses it, on a sharded queue: one row per queue, every shard counted."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from asyncq import RedisQueue
from tests.browser import start_web
from tests.harness import async_wait_until


async def test_a_sharded_queue_is_one_queue(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    async with RedisQueue(queue_name, url=redis_url, shards=3) as q:
        await q.put_many(range(137))
        await q.dead_letter(await q.get_message(), "for the test")
    _, base = start_web(redis_url, tmp_path, "--queue", queue_name)
    async with httpx.AsyncClient(base_url=base) as http:

        async def listed() -> bool:
            rows = (await http.get("api/queues")).json()["queues"]
            return any(row["name"] == queue_name for row in rows)

        await async_wait_until(listed, 15, "the queue to be found by SCAN")
        rows = {row["name"]: row for row in (await http.get("api/queues")).json()["queues"]}
        assert set(rows) == {queue_name}, rows  # no row per shard
        assert (rows[queue_name]["depth"], rows[queue_name]["dead"]) == (136, 1)
        detail = (await http.get(f"api/queues/{queue_name}")).json()
        assert [d["reason"] for d in detail["dead_letters"]] == ["for the test"]
        assert (await http.get("api/queues/no-such-queue")).status_code == 404

        # A script on this machine acts with the CSRF token of the page, as the page's own script does.
        csrf = re.search(r'name="asyncq-csrf" content="([0-9a-f]+)"', (await http.get("/")).text)
        assert csrf
        done = await http.post(
            f"api/queues/{queue_name}/dead-letters/requeue", json={"all": True}, headers={"X-CSRF-Token": csrf[1]}
        )
        assert done.status_code == 200 and len(done.json()["requeued"]) == 1
        assert await q_depth(redis_url, queue_name) == 137


async def q_depth(url: str, name: str) -> int:
    async with RedisQueue(name, url=url, shards=3) as q:
        return await q.qsize()
