"""The HA harness's own tests (tests/ha.py), with plain redis-py clients, not asyncq."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis
import redis.asyncio.cluster as aiocluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from tests.ha import HOST, LocalCluster, LocalSentinel, available, free_cluster_ports

pytestmark = pytest.mark.skipif(not available(), reason="needs redis-server and redis-cli on PATH")

SLOTS = 16384
T = TypeVar("T")


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as c:
        print(f"cluster started in {c.start_seconds:.2f} s")
        yield c


@pytest.fixture
def cluster_client(cluster: LocalCluster) -> Iterator[RedisCluster]:
    client = RedisCluster(startup_nodes=cluster.startup_nodes, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sentinel() -> Iterator[LocalSentinel]:
    with LocalSentinel(password="s3cret-data") as s:
        print(f"sentinel set started in {s.start_seconds:.2f} s")
        yield s


def test_free_cluster_ports_leave_the_bus_port_free() -> None:
    ports = free_cluster_ports(6)
    assert len(set(ports)) == 6
    assert not set(ports) & {p + 10000 for p in ports}
    for port in ports:
        for p in (port, port + 10000):
            with socket.socket() as s:
                s.bind((HOST, p))  # free: binding succeeds


@pytest.mark.timeout(60)
def test_cluster_starts_with_three_masters_and_three_replicas(
    cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    assert cluster.start_seconds is not None and cluster.start_seconds < 30
    nodes = cluster.nodes
    masters = [n for n in nodes if n.role == "master"]
    replicas = [n for n in nodes if n.role == "replica"]
    assert len(masters) == 3 and len(replicas) == 3
    assert all(n.pid and n.node_id and n.alive for n in nodes)
    # Each master has exactly one replica, and the masters' slots cover all 16384 once.
    assert sorted(r.master_id or "" for r in replicas) == sorted(m.node_id for m in masters)
    covered = sorted(s for m in masters for first, last in m.slots for s in range(first, last + 1))
    assert covered == list(range(SLOTS))
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in masters)
    assert [(n.host, n.port) for n in cluster.startup_nodes] == [(HOST, m.port) for m in masters]

    keys = [f"key-{i}" for i in range(2000)]
    for key in keys:
        cluster_client.set(key, key.upper())
    assert len({cluster.keyslot(k) for k in keys}) > 1000  # many slots, on every master
    assert all(cluster_client.get(k) == k.upper() for k in keys)

    # master_of() names the node that really holds the key (a plain client, no redirection), and replica_of() its
    # replica, which has it too once replicated.
    for key in keys[:20]:
        owner = cluster.master_of(key)
        assert owner.role == "master"
        with owner.client() as c:
            assert c.get(key) == key.upper()
        replica = cluster.replica_of(owner)
        assert replica.master_id == owner.node_id
        with replica.client() as c:
            c.execute_command("READONLY")
            assert wait_value(c, key) == key.upper()


def wait_value(client: redis.Redis, key: str, timeout: float = 5.0) -> str | None:
    deadline = time.monotonic() + timeout
    while (value := client.get(key)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return value  # type: ignore[return-value]


@pytest.mark.timeout(60)
async def test_cluster_failover_swaps_roles_while_an_async_client_writes(cluster: LocalCluster) -> None:
    """Also: the harness from an async test (its waits through asyncio.to_thread), with redis.asyncio's cluster
    client writing all along; CLUSTER FAILOVER (not FORCE) loses no acknowledged write."""
    key = "{ha}:probe"
    master = cluster.master_of(key)
    replica = cluster.replica_of(master)
    client = aiocluster.RedisCluster(host=HOST, port=cluster.startup_nodes[0].port, decode_responses=True)
    acked: list[str] = []
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            name = f"{{ha}}:{i}"
            try:
                await client.set(name, i)
            except (redis.RedisError, redis.exceptions.RedisClusterException):
                await asyncio.sleep(0.01)  # retried with the same i
                continue
            acked.append(name)
            i += 1

    try:
        task = asyncio.create_task(writer())
        await asyncio.sleep(0.3)
        before = len(acked)
        started = time.monotonic()
        promoted = await asyncio.to_thread(cluster.failover, replica)
        took = time.monotonic() - started
        await asyncio.sleep(0.3)
        stop.set()
        await task
        print(f"CLUSTER FAILOVER done in {took:.2f} s; {len(acked)} writes, {before} before it")

        assert promoted.port == replica.port
        assert cluster.node(replica.port).role == "master"
        assert cluster.node(master.port).role == "replica"
        assert cluster.node(master.port).master_id == replica.node_id
        assert cluster.master_of(key).port == replica.port
        assert len(acked) > before > 0
        values = [v for start in range(0, len(acked), 500) for v in await client.mget(acked[start : start + 500])]
        assert values == [str(i) for i in range(len(acked))]
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_cluster_kill_promotes_the_replica(cluster: LocalCluster, cluster_client: RedisCluster) -> None:
    key = "{kill}:k"
    cluster_client.set(key, "before")
    master = cluster.master_of(key)
    replica = cluster.replica_of(master)
    wait_replicated(replica, key)

    started = time.monotonic()
    cluster.kill(master)
    assert not master.alive
    new = cluster.wait_failover_after_kill(master)
    print(f"replica promoted {time.monotonic() - started:.2f} s after SIGKILL of its master")
    assert new.port == replica.port and new.role == "master"
    assert cluster.master_of(key).port == replica.port

    # The client made before the kill finds the new master; the write made before the kill survived.
    assert retry(lambda: cluster_client.get(key)) == "before"
    retry(lambda: cluster_client.set(key, "after"))
    assert cluster_client.get(key) == "after"

    # Started again, the old master rejoins as a replica of its former replica.
    started = time.monotonic()
    cluster.restart(master)
    print(f"old master back in the cluster {time.monotonic() - started:.2f} s after restart")
    assert master.alive and cluster.node(master.port).role == "replica"
    assert cluster.node(master.port).master_id == new.node_id


def wait_replicated(replica: object, key: str) -> None:
    from tests.ha import ClusterNode

    assert isinstance(replica, ClusterNode)
    with replica.client() as c:
        c.execute_command("READONLY")
        assert wait_value(c, key) is not None, f"{key} never reached replica {replica.port}"


def retry(call: Callable[[], T], timeout: float = 10.0) -> T:
    """A cluster client right after a topology change may need a few tries (redis-py re-reads the slots)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_cluster_stop_and_cont(cluster: LocalCluster, cluster_client: RedisCluster) -> None:
    """SIGSTOP a master past the node timeout: its replica takes over; on SIGCONT the old master is demoted."""
    key = "{stop}:k"
    cluster_client.set(key, "v")
    master = cluster.master_of(key)
    replica = cluster.replica_of(master)
    wait_replicated(replica, key)
    started = time.monotonic()
    cluster.stop(master)
    assert not master.alive
    new = cluster.wait_failover_after_kill(master)
    print(f"replica promoted {time.monotonic() - started:.2f} s after SIGSTOP of its master")
    cluster.cont(master)
    started = time.monotonic()
    cluster.wait_ok()
    print(f"stopped master demoted {time.monotonic() - started:.2f} s after SIGCONT")
    assert new.port == replica.port
    assert cluster.node(master.port).role == "replica"
    assert retry(lambda: cluster_client.get(key)) == "v"


@pytest.mark.timeout(90)
def test_move_slot_with_1000_keys(cluster: LocalCluster, cluster_client: RedisCluster) -> None:
    keys = [f"{{moving}}:{i}" for i in range(1000)]
    for start in range(0, len(keys), 100):
        with cluster_client.pipeline(transaction=False) as pipe:  # type: ignore[no-untyped-call]
            for key in keys[start : start + 100]:
                pipe.set(key, key)
            pipe.execute()
    slot = cluster.keyslot(keys[0])
    source = cluster.master_of(keys[0])
    target = next(m for m in cluster.masters if m.port != source.port)

    started = time.monotonic()
    moved = cluster.move_slot(slot, target)
    print(f"moved slot {slot} (1000 keys) in {time.monotonic() - started:.2f} s")
    assert moved == 1000
    assert cluster.owner_of_slot(slot).port == target.port
    assert all(cluster.owner_of_slot(slot, via=n).port == target.port for n in cluster.nodes)
    assert cluster.master_of(keys[0]).port == target.port
    with target.client() as t, source.client() as s:
        assert t.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 1000
        assert s.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert retry(lambda: cluster_client.mget(keys)) == keys  # one slot: one MGET, through the cluster client
    # Moving it to where it is does nothing.
    assert cluster.move_slot(slot, target) == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_slow_migration_with_traffic_during_it(cluster: LocalCluster, cluster_client: RedisCluster) -> None:
    old = [f"{{slow}}:old:{i}" for i in range(200)]
    for key in old:
        cluster_client.set(key, key)
    slot = cluster.keyslot(old[0])
    source = cluster.master_of(old[0])
    target = next(m for m in cluster.masters if m.port != source.port)
    seen_moving: list[str] = []

    migration = cluster.move_slot_in_background(slot, target, pause=0.01, on_key=seen_moving.append)
    new: list[str] = []
    reads = 0
    while not migration.done:
        # Reads of keys already moved get ASK from the source; new keys are written through ASK to the target.
        for key in old[::20]:
            assert cluster_client.get(key) == key
            reads += 1
        name = f"{{slow}}:new:{len(new)}"
        cluster_client.set(name, name)
        new.append(name)
    assert migration.wait() >= len(old)
    print(f"{len(new)} writes and {reads} reads during the migration")
    assert len(new) >= 5 and reads >= 50
    assert set(old) <= set(seen_moving)
    assert cluster.owner_of_slot(slot).port == target.port
    with target.client() as t:
        assert t.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(old) + len(new)
    assert retry(lambda: cluster_client.mget(old + new)) == old + new


# --- Sentinel ----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_sentinel_set_starts_and_master_for_writes() -> None:
    with LocalSentinel(password="data-pw", sentinel_password="sentinel-pw") as s:
        print(f"sentinel set (both passwords) started in {s.start_seconds:.2f} s")
        assert s.start_seconds is not None and s.start_seconds < 30
        ports = [port for _, port in s.sentinel_addresses]
        assert len(ports) == 3
        assert s.url == "redis+sentinel://:data-pw@" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/mymaster"
        assert s.service == "mymaster"
        master, replica = s.master(), s.replica()
        assert master != replica and {master[1], replica[1]} == set(s.data)
        for port in ports:
            info = s._sentinel_master(port)
            assert int(info["num-other-sentinels"]) >= 2 and int(info["num-slaves"]) == 1

        client = s.master_for()
        client.set("k", "v")
        assert client.get("k") == b"v"

        # Both passwords are required: by the data nodes and by the sentinels. (No retries: redis-py 8 retries an
        # AuthenticationError, a ConnectionError, 3 times with backoff by default: 3.6 s each.)
        once = Retry(NoBackoff(), 0)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=HOST, port=master[1], retry=once).set("x", 1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=HOST, port=ports[0], retry=once).execute_command("SENTINEL", "MASTERS")  # type: ignore[no-untyped-call]
        with redis.Redis(host=HOST, port=replica[1], password="data-pw") as r:
            assert wait_value(r, "k") == b"v"  # type: ignore[comparison-overlap]
        client.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_sentinel_failover_moves_the_master(sentinel: LocalSentinel) -> None:
    client = sentinel.master_for()  # made before the failover, used after it
    client.set("before", 1)
    old = sentinel.master()

    started = time.monotonic()
    new = sentinel.failover()
    print(f"SENTINEL FAILOVER: new master named after {time.monotonic() - started:.2f} s")
    assert new != old and new == sentinel.master()
    with sentinel.data_client(new[1]) as c:
        assert c.info("replication")["role"] == "master"

    retry(lambda: client.set("after", 2))
    assert client.get("after") == b"2"
    assert client.get("before") == b"1"
    assert sentinel.py_sentinel().discover_master(sentinel.service) == new  # type: ignore[no-untyped-call]

    started = time.monotonic()
    sentinel.wait_demoted(old)
    print(f"old master a linked replica {time.monotonic() - started:.2f} s after that")
    assert sentinel.replica() == old
    client.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sentinel_kill_master_then_restart_it(sentinel: LocalSentinel) -> None:
    client = sentinel.master_for()
    client.set("before", 1)
    with sentinel.data_client(sentinel.replica()[1]) as r:
        assert wait_value(r, "before") == "1"

    started = time.monotonic()
    old = sentinel.kill_master()
    new = sentinel.wait_new_master(old)
    print(f"SIGKILL of the master: new master after {time.monotonic() - started:.2f} s")
    assert new != old
    assert retry(lambda: client.get("before")) == b"1"
    client.set("after", 2)

    started = time.monotonic()
    sentinel.restart(old)
    sentinel.wait_demoted(old)
    print(f"killed master restarted and a linked replica after {time.monotonic() - started:.2f} s")
    with sentinel.data_client(old[1]) as r:
        assert wait_value(r, "after") == "2"
    client.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sentinel_stop_master(sentinel: LocalSentinel) -> None:
    client = sentinel.master_for()
    client.set("before", 1)
    started = time.monotonic()
    paused = sentinel.stop_master(6)
    old = (HOST, paused.proc.port)
    new = sentinel.wait_new_master(old)
    print(f"SIGSTOP of the master: new master after {time.monotonic() - started:.2f} s")
    assert new != old
    retry(lambda: client.set("after", 2))
    assert paused.wait(15)
    started = time.monotonic()
    sentinel.wait_demoted(old)
    print(f"stopped master demoted {time.monotonic() - started:.2f} s after SIGCONT")
    assert sentinel.master() == new
    client.close()
