"""asyncq on a Sentinel set (one master, one replica, three sentinels: real redis-server processes started
here, tests/ha.py) through its ``redis+sentinel://`` URL: the contract and the CLIs, then every failover with
``min_replicas=1``: no acknowledged put lost, and ``join()`` only after every item was processed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncq import RedisQueue
from tests.fault_support import run, start, wait_until
from tests.ha import LocalSentinel
from tests.ha_flow import run_flow

PASSWORD = "s3cret-pw"


@pytest.fixture
def sentinel() -> Iterator[LocalSentinel]:
    with LocalSentinel(password=PASSWORD) as ha:
        yield ha


@pytest.mark.timeout(120)
async def test_contract_and_clis_through_the_sentinel_url(
    sentinel: LocalSentinel, queue_name: str, tmp_path: Path
) -> None:
    url = sentinel.url
    put = run("producer", ["--queue", queue_name, "--count", "200", "--no-wait", "--min-replicas", "1"], url)
    assert put.returncode == 0, put.stderr
    assert PASSWORD not in put.stdout + put.stderr and "***" in put.stdout, put.stdout
    drained = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], url)
    assert drained.returncode == 0, drained.stderr
    assert "processed 200 items" in drained.stdout, drained.stdout

    # The library: maxsize across a producer and a consumer, a retry and a dead letter, join.
    async with RedisQueue(queue_name, url=url, maxsize=5, min_replicas=1) as q:
        await q.put_many(range(5))
        assert await q.full()
        got = [await q.get() for _ in range(5)]
        for _ in got:
            q.task_done()
        await q.put({"data": "doomed"})
        message = await q.get_message()
        assert await q.dead_letter(message, "tested")
        await q.join()
        assert await q.unfinished() == 0

    stats = run("asyncq", ["stats", "--json", "--queue", queue_name], url)
    assert stats.returncode == 0, stats.stderr
    snap = json.loads(stats.stdout)
    assert snap["totals"]["processed"] == 205 and snap["dead"] == 1 and snap["unfinished"] == 0, snap

    requeued = run("asyncq", ["dead-letters", "requeue", "--all", "--queue", queue_name], url)
    assert requeued.returncode == 0 and "requeued 1 item(s)" in requeued.stdout, requeued.stderr
    consumer = start("consumer", ["--queue", queue_name, "--work", "0"], url, tmp_path, "consumer")
    wait_until(lambda: run("asyncq", ["health", "--queue", queue_name], url).returncode == 0, 20, "a healthy consumer")
    async with RedisQueue(queue_name, url=url) as q:
        await q.join()
    assert consumer.terminate() == 0, consumer.describe()


def _failover(sentinel: LocalSentinel) -> None:
    sentinel.failover()


def _kill(sentinel: LocalSentinel) -> None:
    # The replica takes over; the old master, restarted (as its supervisor would), becomes its replica, so
    # puts that wait for one replica go on.
    old = sentinel.kill_master()
    sentinel.wait_new_master(old)
    sentinel.restart(old)


def _stop(sentinel: LocalSentinel) -> None:
    sentinel.stop_master(5.0).wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", [_failover, _kill, _stop], ids=["SENTINEL-FAILOVER", "SIGKILL", "SIGSTOP-5s"])
def test_failover_loses_no_acknowledged_put(
    sentinel: LocalSentinel, queue_name: str, tmp_path: Path, fault: object
) -> None:
    # A backlog at the fault (500 puts/s, consumers at about 200/s): without min_replicas, a SENTINEL FAILOVER
    # of this flow lost 1,192 of 3,000 acknowledged puts here (written to the old master after the switch).
    result = run_flow(
        sentinel.url,
        queue_name,
        tmp_path,
        lambda: fault(sentinel),  # type: ignore[operator]
        count=3000,
        rate=500,
        min_replicas=1,
    )
    print(f"\nsentinel, {fault.__name__.strip('_')}, min_replicas=1: {result.summary()}")  # type: ignore[attr-defined]
    assert result.lost == [], result.describe()
    assert result.unprocessed_at_join == [], result.describe()
    assert len(result.added) == 3000, result.describe()


@pytest.mark.timeout(120)
def test_sentinels_with_a_password_of_their_own(queue_name: str) -> None:
    with LocalSentinel(password=PASSWORD, sentinel_password="sentinel-pw") as ha:
        url = f"{ha.url}?sentinel_password=sentinel-pw"
        put = run("producer", ["--queue", queue_name, "--count", "20", "--no-wait"], url)
        assert put.returncode == 0, put.stderr
        assert "sentinel-pw" not in put.stdout + put.stderr and PASSWORD not in put.stdout, put.stdout
        drained = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], url)
        assert drained.returncode == 0 and "processed 20 items" in drained.stdout, drained.stdout + drained.stderr
        refused = run("producer", ["--queue", queue_name, "--count", "1", "--no-wait"], ha.url)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


@pytest.mark.timeout(120)
async def test_a_sentinel_managed_client_of_the_callers(sentinel: LocalSentinel, queue_name: str) -> None:
    from redis.asyncio.sentinel import Sentinel

    managed = Sentinel([("127.0.0.1", port) for port in sentinel.sentinels], password=PASSWORD)
    client = managed.master_for(sentinel.service)
    try:
        async with RedisQueue(queue_name, redis=client, min_replicas=1) as q:
            await q.put_many(range(10))
            got = [await q.get() for _ in range(10)]
            for _ in got:
                q.task_done()
            await q.join()
            assert sorted(got) == list(range(10))
    finally:
        await client.aclose()
        for each in managed.sentinels:
            await each.aclose()
