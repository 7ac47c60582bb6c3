"""Issue 13 on a local Redis Cluster (3 masters, 3 replicas: real redis-server processes, tests/ha.py): one queue
spread over 6 shards, driven by real producer and consumer processes (``--shards 6``) and counted by item id
(tests/ha_flow.py). Without faults it delivers exactly once with its sub-queues on several masters; a master
SIGKILLed (``--min-replicas 1``) or slots moved between masters lose no acknowledged item and ``join()`` waits for
all; a consumer killed while holding items on several shards has them recovered on each; a process opening the
queue with another shard count exits 1 with one line.

Shard ``i`` of N hashes into the i-th N-th of the slot range, and a fresh 3-master cluster owns three even runs
of slots, so the six shards sit two on each master (shards 0 and 1 on the first, 2 and 3, 4 and 5); the first
test checks that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.keys import Keys, shard_keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import counts, run, start, wait_until
from tests.ha import LocalCluster
from tests.ha_flow import run_flow

QUEUE = "flow"
SHARDS = 6
LAYOUT = ["--shards", str(SHARDS)]


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas=1) as ha:
        yield ha


def _owners(cluster: LocalCluster) -> dict[int, int]:
    """Shard index -> port of the master owning its slot."""
    return {keys.index: cluster.master_of(keys.queue).port for keys in shard_keys(QUEUE, SHARDS)}


def _read(cluster: LocalCluster, keys: Keys, command: str, *args: object) -> Any:
    """One command on the master owning shard ``keys``'s slot, whatever moved it there."""
    with cluster.master_of(keys.queue).client() as c:
        return c.execute_command(command, *args)


def _totals(cluster: LocalCluster, keys: Keys) -> dict[str, int]:
    with cluster.master_of(keys.queue).client() as c:
        return {k: int(v) for k, v in c.hgetall(keys.totals).items()}


def _held(cluster: LocalCluster, pid: int) -> tuple[str | None, dict[int, int]]:
    """The consumer id of process ``pid`` and how many items its processing list holds on each shard."""
    owned = re.compile(rf"-{pid}-[0-9a-f]{{6}}$")
    found: str | None = None
    held: dict[int, int] = {}
    for keys in shard_keys(QUEUE, SHARDS):
        with cluster.master_of(keys.queue).client() as c:
            for key in c.scan_iter(match=keys.claims_pattern, count=1000):
                consumer = keys.consumer_of(key)
                n = c.hlen(key) if ":held:" in str(key) else c.llen(key)
                if owned.search(consumer) and n:
                    found, held[keys.index] = consumer, held.get(keys.index, 0) + n
    return found, held


def _check_flow(cluster: LocalCluster, result: object, count: int) -> None:
    from tests.ha_flow import FlowResult

    assert isinstance(result, FlowResult)
    assert len(result.added) == count, result.describe()
    assert result.lost == [], result.describe()
    assert result.unprocessed_at_join == [], result.describe()
    # Every shard took part: the puts spread, and every one was processed on its own shard.
    processed = {keys.index: _totals(cluster, keys).get("processed", 0) for keys in shard_keys(QUEUE, SHARDS)}
    assert all(n > 0 for n in processed.values()), processed
    assert sum(processed.values()) >= count, processed


@pytest.mark.timeout(180)
def test_six_shards_sit_on_every_master_and_deliver_exactly_once(cluster: LocalCluster, tmp_path: Path) -> None:
    owners = _owners(cluster)
    assert len(set(owners.values())) == 3, f"the shards of {QUEUE!r} should spread over the 3 masters: {owners}"

    result = run_flow(cluster.url, QUEUE, tmp_path, lambda: None, count=1200, rate=400, work=0.05, shards=SHARDS)
    print(f"\n6 shards on 3 masters, no fault: {result.summary()}")
    _check_flow(cluster, result, 1200)
    assert result.duplicated == 0, result.describe()
    # The items really are on the shards' own masters: each master holds the totals of its shards, and nothing
    # of the queue beyond its record sits under the unsharded tag {flow}.
    for keys in shard_keys(QUEUE, SHARDS):
        assert _read(cluster, keys, "EXISTS", keys.totals) == 1, keys.prefix
    unsharded = Keys(QUEUE)
    assert _read(cluster, unsharded, "EXISTS", unsharded.queue, unsharded.totals) == 0
    assert _read(cluster, unsharded, "HGET", unsharded.meta, "shards") == str(SHARDS)


def _kill_a_master(cluster: LocalCluster) -> None:
    # The master of shard 0 (its home: the consumers' registry and the recovery lock); its replica takes over and
    # the old master, restarted as a supervisor would, becomes the replica, so puts waiting for one go on.
    master = cluster.master_of(shard_keys(QUEUE, SHARDS)[0].queue)
    cluster.kill(master)
    cluster.wait_failover_after_kill(master)
    cluster.restart(master)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_of_a_master_loses_no_acknowledged_item(cluster: LocalCluster, tmp_path: Path) -> None:
    before = _owners(cluster)
    result = run_flow(cluster.url, QUEUE, tmp_path, lambda: _kill_a_master(cluster), count=1500, shards=SHARDS)
    print(f"\n6 shards, SIGKILL of shard 0's master, min_replicas=1: {result.summary()}")
    assert _owners(cluster)[0] != before[0], "shard 0 should be on the promoted replica"
    _check_flow(cluster, result, 1500)


MOVED = (0, 2)  # shards on two different masters


def _move_two_shards(cluster: LocalCluster) -> None:
    # The slots of two shards on two different masters, each moved to the master after its own, one key at a
    # time: traffic meanwhile meets ASK redirections and TRYAGAIN.
    for shard in MOVED:
        key = shard_keys(QUEUE, SHARDS)[shard].queue
        owner = cluster.master_of(key)
        masters = sorted(cluster.masters, key=lambda node: node.port)
        target = masters[(masters.index(next(m for m in masters if m.port == owner.port)) + 1) % len(masters)]
        cluster.move_slot_in_background(cluster.keyslot(key), target, pause=0.05).wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_resharding_during_a_flow_loses_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    before = _owners(cluster)
    result = run_flow(cluster.url, QUEUE, tmp_path, lambda: _move_two_shards(cluster), count=1500, shards=SHARDS)
    print(f"\n6 shards, slots of shards {MOVED} moved: {result.summary()}")
    after = _owners(cluster)
    assert before[MOVED[0]] != before[MOVED[1]], before
    assert all(after[shard] != before[shard] for shard in MOVED), (before, after)
    _check_flow(cluster, result, 1500)


@pytest.mark.timeout(180)
async def test_a_killed_consumers_items_are_recovered_on_every_shard(cluster: LocalCluster, tmp_path: Path) -> None:
    with EmbeddedRedis() as store:
        record = {"FAULT_RECORD_URL": store.url, "FAULT_RECORD_KEY": QUEUE}
        handler = ["--queue", QUEUE, *LAYOUT, "--handler", "tests.fault_handlers:record", "--heartbeat", "0.5"]
        slow = start(
            "consumer", [*handler, "--concurrency", "12", "--prefetch", "0"], cluster.url, tmp_path, "slow",
            FAULT_WORK="60", **record,
        )  # fmt: skip
        # One item per put (batch 1, one coroutine): round-robin puts two on each of the six shards.
        put = run(
            "producer", ["--queue", QUEUE, *LAYOUT, "-n", "12", "-p", "1", "--batch", "1", "--no-wait"], cluster.url
        )
        assert put.returncode == 0, put.stderr
        record_client = redis.Redis.from_url(store.url)
        wait_until(lambda: record_client.hlen(f"{QUEUE}:started") == 12, 60, "the slow consumer's 12 items started")
        dead, held = _held(cluster, slow.pid)
        assert dead is not None and sum(held.values()) == 12, held
        assert len(held) >= 2, f"the slow consumer should hold items on several shards: {held}"
        slow.kill()

        helper = start("consumer", handler, cluster.url, tmp_path, "helper", **record)
        async with RedisQueue(QUEUE, url=cluster.url, shards=SHARDS) as q:
            await q.join()
            assert await q.unfinished() == 0
        assert counts(record_client, QUEUE) == {d.decode(): 1 for d in record_client.hkeys(f"{QUEUE}:started")}
        assert len(counts(record_client, QUEUE)) == 12
        for keys in shard_keys(QUEUE, SHARDS):
            left = _read(cluster, keys, "LLEN", keys.processing(dead)) + _read(cluster, keys, "HLEN", keys.held(dead))
            assert left == 0, f"shard {keys.index} still holds {left} item(s) of the dead consumer"
            assert _totals(cluster, keys).get("recovered", 0) == held.get(keys.index, 0), keys.index
        assert helper.terminate() == 0, helper.describe()
        record_client.close()


@pytest.mark.timeout(120)
def test_another_shard_count_exits_1_with_one_line(cluster: LocalCluster) -> None:
    url = cluster.url
    made = run("producer", ["--queue", QUEUE, *LAYOUT, "-n", "10", "--no-wait"], url)
    assert made.returncode == 0, made.stderr
    attempts = {
        "producer --shards 3": ("producer", ["--queue", QUEUE, "--shards", "3", "-n", "1", "--no-wait"]),
        "consumer --shards 3": ("consumer", ["--queue", QUEUE, "--shards", "3", "--work", "0", "--drain"]),
        "producer (1 shard)": ("producer", ["--queue", QUEUE, "-n", "1", "--no-wait"]),
    }
    for what, (program, args) in attempts.items():
        done = run(program, args, url)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1, f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stdout + done.stderr, f"{what}:\n{done.stderr}"
        assert len(lines) == 1, f"{what}: one line expected:\n{done.stderr}"
        opened = re.search(r"--shards (\d+)", " ".join(args))
        assert "6" in lines[0] and (opened.group(1) if opened else "1") in lines[0], f"{what}: {lines[0]}"
    # Nothing was put by the refused processes: the ten items wait on the six shards, the record still says 6.
    depth = sum(int(_read(cluster, keys, "LLEN", keys.queue)) for keys in shard_keys(QUEUE, SHARDS))
    assert depth == 10
    # The operator's view adds the shards up, each read on its own master, with no --shards given.
    stats = run("asyncq", ["stats", "--json", "--queue", QUEUE], url)
    assert stats.returncode == 0, stats.stderr
    snap = json.loads(stats.stdout)
    assert snap["depth"] == 10 and snap["unfinished"] == 10, snap
    drained = run("consumer", ["--queue", QUEUE, *LAYOUT, "--work", "0", "--drain"], url)
    assert drained.returncode == 0 and "processed 10 items" in drained.stdout, drained.stdout + drained.stderr
    snap = json.loads(run("asyncq", ["stats", "--json", "--queue", QUEUE], url).stdout)
    assert snap["depth"] == 0 and snap["unfinished"] == 0 and snap["totals"]["processed"] == 10, snap
