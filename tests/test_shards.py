"""Issue 13 on one redis-server: a queue of several shards keeps asyncio.Queue's contract. Exactly once across two
consumer processes; a busy shard does not starve the others; ``qsize``, ``join`` and a ``maxsize`` shared out
over the shards; dead letters on several shards listed and requeued by ``asyncq dead-letters``; a process that
opens the queue with another shard count is refused; and an idle consumer of 12 shards costs Redis about what an
idle consumer of one shard does (commands/s from ``INFO``, as in tests/test_rel_idle_cost.py).

The shards of one server share its one client, but each has its own hash tag, keys and scripts, exactly as on a
cluster (tests/test_shards_cluster.py runs the flows there).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from asyncq import Message, QueueLayoutError, RedisQueue
from asyncq.core.envelope import encode
from asyncq.core.keys import shard_keys
from asyncq.core.scripts import Scripts
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import Proc, run, start, wait_until
from tests.harness import async_wait_until, commands_per_second

SHARDS = 4


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _depths(client: aioredis.Redis, name: str, shards: int) -> list[int]:
    return [int(await client.llen(keys.queue)) for keys in shard_keys(name, shards)]


@pytest.mark.timeout(120)
def test_two_consumer_processes_get_every_item_exactly_once(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    layout = ["--queue", queue_name, "--shards", str(SHARDS)]
    put = start("producer", [*layout, "-n", "2000", "-v", "--no-wait"], redis_url, tmp_path, "producer")
    assert put.wait(60) == 0, put.describe()
    added = put.added()
    assert len(added) == 2000
    # Both start on a full queue; at 4 x 10 ms per item either would need 5 s alone: both take part.
    args = [*layout, "--concurrency", "4", "--prefetch", "4", "--work", "0.01", "--drain", "-v"]
    consumers = [start("consumer", args, redis_url, tmp_path, f"consumer-{n}") for n in range(2)]
    for proc in consumers:
        assert proc.wait(90) == 0, proc.describe()
    delivered = Counter(item for proc in consumers for item in proc.items())
    assert set(delivered) == set(added), f"missing {len(set(added) - set(delivered))}"
    assert max(delivered.values()) == 1, [item for item, n in delivered.items() if n > 1][:5]
    assert all(proc.items() for proc in consumers), [len(proc.items()) for proc in consumers]
    client = redis.Redis.from_url(redis_url)
    try:
        # Every shard had its share and is empty now.
        enqueued = [int(client.hget(keys.totals, "enqueued") or 0) for keys in shard_keys(queue_name, SHARDS)]
        assert sum(enqueued) == 2000 and all(n > 0 for n in enqueued), enqueued
        assert all(client.llen(keys.queue) == 0 for keys in shard_keys(queue_name, SHARDS))
    finally:
        client.close()


async def _fill(client: aioredis.Redis, name: str, shard: int, count: int) -> set[str]:
    """``count`` items straight onto shard ``shard`` (its own PUT script: counted unfinished, like any put)."""
    scripts = Scripts(client, shard_keys(name, SHARDS)[shard], notify=True)
    data = [f"s{shard}-{n}" for n in range(count)]
    for seq, start_at in enumerate(range(0, count, 500), 1):
        raws = [encode({"data": d}) for d in data[start_at : start_at + 500]]
        assert await scripts.put(f"filler-{shard}", seq, raws, 0) == len(raws)
    return set(data)


@pytest.mark.timeout(120)
async def test_a_busy_shard_does_not_starve_the_others(redis_url: str, queue_name: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with RedisQueue(queue_name, url=redis_url, shards=SHARDS, prefetch=10) as q:
            placed = {0: await _fill(client, queue_name, 0, 2000)}
            for shard in range(1, SHARDS):
                placed[shard] = await _fill(client, queue_name, shard, 5)
            assert await q.qsize() == 2015

            first: list[Message] = []
            for _ in range(40):
                message = await asyncio.wait_for(q.get_message(), 30)
                assert message.payload["data"] in placed[message.shard], (message.shard, message.payload)
                first.append(message)
                q.ack(message)
            seen = Counter(m.shard for m in first)
            assert set(seen) == set(range(SHARDS)), f"the first 40 deliveries came from shards {dict(seen)}"

            rest = Counter()
            for _ in range(2015 - 40):
                message = await asyncio.wait_for(q.get_message(), 30)
                q.ack(message)
                rest[message.shard] += 1
            await asyncio.wait_for(q.join(), 30)
            assert {s: seen[s] + rest[s] for s in range(SHARDS)} == {s: len(placed[s]) for s in range(SHARDS)}
            assert await q.qsize() == 0
    finally:
        await client.aclose()


@pytest.mark.timeout(60)
async def test_qsize_join_and_maxsize_over_the_shards(redis_url: str, queue_name: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with RedisQueue(queue_name, url=redis_url, shards=SHARDS, maxsize=8) as q:
            assert await q.empty() and await q.qsize() == 0
            for n in range(8):
                await q.put(n)
            # Round-robin puts: two per shard, which is each shard's share of maxsize (ceil(8 / 4)).
            assert await _depths(client, queue_name, SHARDS) == [2, 2, 2, 2]
            assert await q.qsize() == 8 and await q.unfinished() == 8 and await q.full()

            blocked = asyncio.create_task(q.put(8))
            done, _ = await asyncio.wait({blocked}, timeout=1.0)
            assert not done, "a put into a full sharded queue should wait for room"
            got = [await asyncio.wait_for(q.get_message(), 10) for _ in range(8)]
            assert {m.shard for m in got} == set(range(SHARDS))
            await asyncio.wait_for(blocked, 30)  # room was made: the waiting put went in
            got.append(await asyncio.wait_for(q.get_message(), 10))
            assert sorted(m.payload for m in got) == list(range(9))

            for message in got[:-1]:
                q.ack(message)
            # Acknowledgements are group-committed: the counters follow within a moment.
            await async_wait_until(lambda: _equals(q.unfinished(), 1), 10, "8 of 9 items done")
            joined = asyncio.create_task(q.join())
            done, _ = await asyncio.wait({joined}, timeout=1.0)
            assert not done, "join() returned with an item unfinished"
            q.ack(got[-1])
            await asyncio.wait_for(joined, 30)
            assert await q.qsize() == 0 and await q.unfinished() == 0
    finally:
        await client.aclose()


@pytest.mark.timeout(60)
async def test_another_shard_count_is_refused_naming_both(redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url, shards=SHARDS) as q:
        await q.put("kept")
    for other in (2, 1):
        with pytest.raises(QueueLayoutError) as refused:
            async with RedisQueue(queue_name, url=redis_url, shards=other) as wrong:
                await wrong.put("misplaced")
        assert str(SHARDS) in str(refused.value) and str(other) in str(refused.value), str(refused.value)
        assert isinstance(refused.value, ValueError)
    async with RedisQueue(queue_name, url=redis_url, shards=SHARDS) as q:
        assert await q.qsize() == 1
        assert (await q.get()) == "kept"
        q.task_done()
        await q.join()


@pytest.mark.timeout(120)
async def test_dead_letters_of_every_shard_are_listed_and_requeued(redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url, shards=SHARDS) as q:
        for n in range(8):
            await q.put({"data": f"doomed-{n}"})
        messages = [await asyncio.wait_for(q.get_message(), 10) for _ in range(8)]
        for message in messages:
            assert await q.dead_letter(message, "tested")
        assert {m.shard for m in messages} == set(range(SHARDS))
    client = aioredis.Redis.from_url(redis_url)
    per_shard = [int(await client.llen(keys.dead)) for keys in shard_keys(queue_name, SHARDS)]
    await client.aclose()
    assert per_shard == [2, 2, 2, 2], per_shard

    # The operator's CLI reads the shard count from Redis: no --shards needed.
    listed = run("asyncq", ["dead-letters", "list", "--json", "--queue", queue_name], redis_url)
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["id"] for r in records) == sorted(m.id for m in messages)
    assert all(r["reason"] == "tested" for r in records)
    stats = run("asyncq", ["stats", "--json", "--queue", queue_name], redis_url)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["dead"] == 8, stats.stdout

    one = messages[0].id
    requeued = run("asyncq", ["dead-letters", "requeue", "--queue", queue_name, one], redis_url)
    assert requeued.returncode == 0 and "requeued 1 item(s)" in requeued.stdout, requeued.stdout + requeued.stderr
    requeued = run("asyncq", ["dead-letters", "requeue", "--all", "--queue", queue_name], redis_url)
    assert requeued.returncode == 0 and "requeued 7 item(s)" in requeued.stdout, requeued.stdout + requeued.stderr
    client = aioredis.Redis.from_url(redis_url)
    back = await _depths(client, queue_name, SHARDS)
    await client.aclose()
    assert back == [2, 2, 2, 2], f"each dead letter should go back to its own shard: {back}"
    drained = run("consumer", ["--queue", queue_name, "--shards", str(SHARDS), "--work", "0", "--drain"], redis_url)
    assert drained.returncode == 0 and "processed 8 items" in drained.stdout, drained.stdout + drained.stderr
    stats = run("asyncq", ["stats", "--json", "--queue", queue_name], redis_url)
    snap = json.loads(stats.stdout)
    assert snap["dead"] == 0 and snap["unfinished"] == 0 and snap["depth"] == 0, snap
    assert snap["totals"]["processed"] == 8, snap


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (/proc/<pid>/stat, as bench/procs.py reads it)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_percent(pid: int, seconds: float) -> float:
    before, started = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return 100 * (_cpu_seconds(pid) - before) / (time.monotonic() - started)


@pytest.mark.timeout(150)
def test_a_steady_stream_over_shards_is_handled_at_once(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    """1,000 items/s into a mostly empty 6-shard queue: each item is taken when it arrives, on the ``ready``
    notification of its shard; none waits for the safety-net look an idle consumer takes (one shard per
    2-second block timeout), and ``join()`` returns once the stream ends. One consumer: no other one can cover
    for a notification it missed. On one shard the same stream shows a p99 of a few ms."""
    layout = ["--queue", queue_name, "--shards", "6"]
    summary = tmp_path / "summary.json"
    args = [*layout, "--work", "0", "--heartbeat", "0.5", "--summary-file", str(summary)]
    consumer = start("consumer", args, redis_url, tmp_path, "consumer")
    client = redis.Redis.from_url(redis_url)
    home = shard_keys(queue_name, 6)[0]
    wait_until(lambda: any(True for _ in client.scan_iter(match=home.heartbeat_pattern)), 60, "the consumer")
    producer = start("producer", [*layout, "-n", "5000", "--rate", "1000"], redis_url, tmp_path, "producer")
    try:
        producer.wait(60)  # 5 s of stream, then join()
    except subprocess.TimeoutExpired:
        depths = [int(client.llen(keys.queue)) for keys in shard_keys(queue_name, 6)]
        cpu = _cpu_percent(consumer.pid, 2.0)
        raise AssertionError(
            f"join() had not returned 55 s after the stream ended: items waiting on the shards {depths}, the "
            f"consumer at {cpu:.0f}% CPU"
        ) from None
    finally:
        client.close()
    assert producer.proc.returncode == 0, producer.describe()
    assert consumer.terminate() == 0, consumer.describe()
    latency = json.loads(summary.read_text())["latency_ms"]
    print(f"\n6 shards, 1,000 items/s, enqueue-to-handler ms: p50 {latency['p50']:.1f}, p99 {latency['p99']:.1f}")
    assert latency["p99"] < 500, f"items waited in their shard: p99 {latency['p99']:.0f} ms ({latency})"


@pytest.mark.timeout(90)
def test_a_consumer_waiting_for_a_retry_stays_idle(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    """A sharded consumer with nothing to do but a retry due in 6 s waits for it without burning CPU (as a
    1-shard consumer does: well under 1%), and the retry comes."""
    layout = ["--queue", queue_name, "--shards", str(SHARDS)]
    retry = ["--handler", "tests.fault_handlers:behave", "--retry-base", "6", "--retry-cap", "6"]
    consumer = start("consumer", [*layout, *retry], redis_url, tmp_path, "consumer", FAULT_RECORD_KEY=queue_name)
    client = redis.Redis.from_url(redis_url)
    try:

        async def put() -> None:
            async with RedisQueue(queue_name, url=redis_url, shards=SHARDS) as q:
                await q.put({"data": "again", "mode": "flaky", "fails": 1})

        asyncio.run(put())
        calls = f"{queue_name}:calls:again"
        delayed = [keys.delayed for keys in shard_keys(queue_name, SHARDS)]
        wait_until(lambda: client.llen(calls) == 1 and sum(client.zcard(k) for k in delayed) == 1, 30, "the retry")
        cpu = _cpu_percent(consumer.pid, 3.0)
        wait_until(lambda: client.hget(f"{queue_name}:counts", "again") == b"1", 30, "the item done on its retry")
        assert client.llen(calls) == 2
    finally:
        client.close()
    assert consumer.terminate() == 0, consumer.describe()
    assert cpu < 20, f"the consumer burnt {cpu:.0f}% CPU while waiting for a retry"


# -- the idle cost ---------------------------------------------------------------------------------------------

K = 3  # idle consumer processes per layout
HEARTBEAT = "2.0"  # the CLI's default: what an operator runs (the block timeout is its default too, 2 s)
WINDOW = 8.0  # seconds of measurement: 4 heartbeat intervals, 4 block timeouts
CLOSE = 1.5  # a 12-shard idle consumer may cost at most this many times a 1-shard one


def _heartbeats(client: redis.Redis, name: str, shards: int) -> list[int]:
    """Live consumer heartbeats on each shard."""
    return [sum(1 for _ in client.scan_iter(match=k.heartbeat_pattern, count=1000)) for k in shard_keys(name, shards)]


def _idle_rate(client: redis.Redis, url: str, shards: int, tmp_path: Path) -> tuple[float, dict[str, int]]:
    """Commands/s of Redis with K idle consumers of a queue of ``shards`` shards, and the calls of each command
    over the window (INFO commandstats, for the failure message)."""
    name = f"idle-{shards}"
    args = ["--queue", name, "--shards", str(shards), "--heartbeat", HEARTBEAT, "--concurrency", "1", "--work", "0"]
    consumers: list[Proc] = [start("consumer", args, url, tmp_path, f"consumer-{shards}-{n}") for n in range(K)]
    # Every consumer keeps a heartbeat on the home shard (shard 0); after its first look at every shard and one
    # interval more it has left the others (nothing to hold there) and is in its idle loop.
    wait_until(lambda: _heartbeats(client, name, shards)[0] == K, 60, f"{K} heartbeats on shard 0")
    time.sleep(2 * float(HEARTBEAT))
    client.config_resetstat()
    rate = commands_per_second(client, WINDOW)
    stats = client.info("commandstats")
    calls = {name[len("cmdstat_") :]: int(row["calls"]) for name, row in stats.items() if isinstance(row, dict)}
    for proc in consumers:
        assert proc.terminate() == 0, proc.describe()
    return rate, {name: n for name, n in calls.items() if name not in ("info", "config|resetstat")}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_an_idle_consumer_of_12_shards_costs_about_one_of_1_shard(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    client = redis.Redis.from_url(own_redis.url)
    try:
        one_rate, one_calls = _idle_rate(client, own_redis.url, 1, tmp_path)
        twelve_rate, twelve_calls = _idle_rate(client, own_redis.url, 12, tmp_path)
    finally:
        client.close()
    one, twelve = one_rate / K, twelve_rate / K
    print(
        f"\nidle cost per consumer process, heartbeat {HEARTBEAT} s: 1 shard {one:.1f} commands/s, "
        f"12 shards {twelve:.1f} commands/s (x{twelve / one:.2f})"
    )
    assert twelve <= CLOSE * one, (
        f"an idle consumer of 12 shards costs {twelve:.1f} commands/s, one of 1 shard {one:.1f} "
        f"(x{twelve / one:.2f}, at most x{CLOSE}); calls of {K} consumers over {WINDOW:.0f} s: 1 shard {one_calls}, "
        f"12 shards {twelve_calls}"
    )
