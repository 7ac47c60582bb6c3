"""asyncq on a local Redis Cluster (3 masters, 3 replicas: real redis-server processes started here,
tests/ha.py) through its ``redis+cluster://`` URL: the contract and the CLIs through a node that does not own
the queue's slot, recovery of a killed consumer's items, then every fault of the slot's master with
``min_replicas=1``: no acknowledged put lost, ``join()`` only after every item was processed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.fault_support import counts, run, start, wait_until
from tests.ha import LocalCluster
from tests.ha_flow import run_flow


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas=1) as ha:
        yield ha


def _elsewhere(cluster: LocalCluster, queue: str) -> str:
    """A cluster URL naming only a master that does not own the queue's slot."""
    owner = cluster.master_of(Keys(queue).queue)
    other = next(node for node in cluster.masters if node.port != owner.port)
    return f"redis+cluster://127.0.0.1:{other.port}"


@pytest.mark.timeout(120)
async def test_contract_and_clis_through_a_node_without_the_slot(
    cluster: LocalCluster, queue_name: str, tmp_path: Path
) -> None:
    url = _elsewhere(cluster, queue_name)
    put = run("producer", ["--queue", queue_name, "--count", "300", "--no-wait", "--min-replicas", "1"], url)
    assert put.returncode == 0, put.stderr
    drained = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], url)
    assert drained.returncode == 0 and "processed 300 items" in drained.stdout, drained.stdout + drained.stderr

    async with RedisQueue(queue_name, url=url, maxsize=3) as q:
        await q.put_many(range(3))
        assert await q.full()
        got = [await q.get() for _ in range(3)]
        for _ in got:
            q.task_done()
        await q.put({"data": "doomed"})
        assert await q.dead_letter(await q.get_message(), "tested")
        await q.join()

    stats = run("asyncq", ["stats", "--json", "--queue", queue_name], url)
    assert stats.returncode == 0, stats.stderr
    snap = json.loads(stats.stdout)
    assert snap["totals"]["processed"] == 303 and snap["dead"] == 1 and snap["unfinished"] == 0, snap
    requeued = run("asyncq", ["dead-letters", "requeue", "--all", "--queue", queue_name], url)
    assert requeued.returncode == 0 and "requeued 1 item(s)" in requeued.stdout, requeued.stderr
    drained = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], url)
    assert drained.returncode == 0 and "processed 1 items" in drained.stdout, drained.stdout + drained.stderr


@pytest.mark.timeout(120)
async def test_killed_consumers_items_are_recovered_on_the_slots_node(
    cluster: LocalCluster, queue_name: str, tmp_path: Path
) -> None:
    url = _elsewhere(cluster, queue_name)
    owner = cluster.master_of(Keys(queue_name).queue)
    store = redis.Redis(host="127.0.0.1", port=owner.port)  # the slot's master holds the records too
    record = {"FAULT_RECORD_URL": f"redis://127.0.0.1:{owner.port}/0", "FAULT_RECORD_KEY": f"{{{queue_name}}}"}
    slow = start(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.fault_handlers:record", "--heartbeat", "0.5", "--prefetch", "0"],
        url,
        tmp_path,
        "slow",
        FAULT_WORK="30",
        **record,
    )
    async with RedisQueue(queue_name, url=url) as q:
        await q.put_many({"data": f"item-{n}"} for n in range(4))
        keys = Keys(queue_name)
        wait_until(lambda: store.hlen(f"{{{queue_name}}}:started") == 4, 20, "the slow consumer's four jobs started")
        slow.kill()
        helper = start(
            "consumer", ["--queue", queue_name, "--handler", "tests.fault_handlers:record"], url, tmp_path, "helper",
            **record,
        )  # fmt: skip
        await q.join()
    assert counts(store, f"{{{queue_name}}}") == {f"item-{n}": 1 for n in range(4)}
    assert int(store.hget(keys.totals, "recovered") or 0) == 4
    assert helper.terminate() == 0, helper.describe()
    store.close()


def _kill(cluster: LocalCluster, queue: str) -> None:
    # The replica takes over; the old master, restarted (as its supervisor would), becomes its replica, so
    # puts that wait for one replica go on.
    master = cluster.master_of(Keys(queue).queue)
    cluster.kill(master)
    cluster.wait_failover_after_kill(master)
    cluster.restart(master)


def _failover(cluster: LocalCluster, queue: str) -> None:
    cluster.failover(cluster.replica_of(cluster.master_of(Keys(queue).queue)))


def _move(cluster: LocalCluster, queue: str) -> None:
    key = Keys(queue).queue
    owner = cluster.master_of(key)
    target = next(node for node in cluster.masters if node.port != owner.port)
    cluster.move_slot_in_background(cluster.keyslot(key), target, pause=0.05).wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", [_kill, _failover, _move], ids=["SIGKILL", "CLUSTER-FAILOVER", "slot-moved"])
def test_fault_of_the_slots_master_loses_no_acknowledged_put(
    cluster: LocalCluster, queue_name: str, tmp_path: Path, fault: object
) -> None:
    url = _elsewhere(cluster, queue_name)
    result = run_flow(url, queue_name, tmp_path, lambda: fault(cluster, queue_name), min_replicas=1)  # type: ignore[operator]
    print(f"\ncluster, {fault.__name__.strip('_')}, min_replicas=1: {result.summary()}")  # type: ignore[attr-defined]
    assert result.lost == [], result.describe()
    assert result.unprocessed_at_join == [], result.describe()
    assert len(result.added) == 1500, result.describe()


@pytest.mark.timeout(120)
async def test_a_redis_cluster_client_retries_and_metrics(
    cluster: LocalCluster, queue_name: str, tmp_path: Path
) -> None:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from asyncq.tools.embedded import free_port
    from tests.test_metrics import answers, get, scrape

    # redis= a RedisCluster of the caller's: asyncq finds the queue's master through it.
    nodes = [ClusterNode("127.0.0.1", node.port) for node in cluster.masters]
    rc = RedisCluster(startup_nodes=nodes)
    await rc.initialize()
    try:
        async with RedisQueue(queue_name, redis=rc) as q:
            await q.put({"data": "again"})
            first = await q.get_message()
            assert await q.retry(first, 0.2)  # kept in the slot's delayed set, on Redis's clock
            second = await q.get_message()
            assert second.id == first.id and second.attempts == 1
            q.ack(second)
            await q.join()
    finally:
        await rc.aclose()

    url = _elsewhere(cluster, queue_name)
    port = free_port()
    args = ["--queue", queue_name, "--work", "0", "--metrics-port", str(port)]
    consumer = start("consumer", args, url, tmp_path, "consumer")
    wait_until(lambda: answers(port, consumer), 30, "the metrics endpoint")
    assert get(port, "/healthz")[0] == 200
    async with RedisQueue(queue_name, url=url) as q:
        await q.put_many(range(7))
        await q.join()
    wait_until(lambda: scrape(port, queue_name)["asyncq_processed_total"] == 7, 20, "7 processed in the metrics")
    m = scrape(port, queue_name)
    assert m["asyncq_redis_up"] == 1 and m["asyncq_queue_depth"] == 0, m
    assert consumer.terminate() == 0, consumer.describe()
