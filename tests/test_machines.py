"""Producer and consumers on different machines (network namespaces) sharing one Redis on a fourth."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns
from tests.cli_procs import duplicates, heartbeats, queue_state, start_cli, stats_json
from tests.harness import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.timeout(150)]

COUNT = 300


@pytest.fixture
def net() -> Iterator[netns.Network]:
    netns.skip_unless_available()
    with netns.Network(4) as network:
        yield network


def test_two_consumers_on_two_machines_process_each_item_once(net: netns.Network, tmp_path: Path) -> None:
    host_a, host_b, host_c, host_d = net.hosts
    redis = netns.start_redis(host_a, tmp_path)
    consumer_args = ["-v", "--concurrency", "4", "--work", "0.005-0.02"]
    consumers = [
        start_cli(host, "consumer", consumer_args, redis, tmp_path, name=f"consumer-{host.ip}")
        for host in (host_c, host_d)
    ]

    def diagnostics() -> str:
        return "".join(c.describe() for c in consumers) + stats_json(host_b, redis)

    # Both consumers are waiting before the first item: a rate-limited producer then feeds both of them.
    wait_until(lambda: len(heartbeats(redis)) == 2, 20, "both consumers' heartbeats")

    producer = start_cli(
        host_b,
        "producer",
        ["--count", str(COUNT), "--size", "32", "--rate", "150", "--producers", "3", "--wait"],
        redis,
        tmp_path,
    )
    try:
        producer_rc = producer.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"producer --wait did not return within 60 s\n{producer.describe()}{diagnostics()}")
    assert producer_rc == 0, producer.describe() + diagnostics()
    assert f"produced {COUNT} items" in producer.stdout(), producer.describe()

    for consumer in consumers:
        assert consumer.terminate(timeout=30) == 0, consumer.describe()

    per_consumer = [consumer.items() for consumer in consumers]
    every = [item for items in per_consumer for item in items]
    assert not duplicates(every), f"processed more than once: {duplicates(every)}"
    assert len(set(every)) == COUNT, f"{len(set(every))} distinct items processed of {COUNT}\n{diagnostics()}"
    assert all(per_consumer), f"a consumer processed nothing: {[len(i) for i in per_consumer]}"

    state = queue_state(redis)
    assert state["queue"] == 0, state
    assert state["dead"] == 0, state
    assert state["unfinished"] in ("", "0"), state
    assert sum(state["processing"].values()) == 0, state
    print(f"items per consumer: {[len(items) for items in per_consumer]}; redis: {state}")


def test_producer_wait_shutdown_ends_the_consumers_of_other_machines(net: netns.Network, tmp_path: Path) -> None:
    """What the seed's c.cancel() does in one process: the producer on one machine joins, then shuts the queue
    down, and the consumers on two other machines finish their items and exit 0 by themselves."""
    host_a, host_b, host_c, host_d = net.hosts
    redis = netns.start_redis(host_a, tmp_path)
    consumers = [
        start_cli(
            host, "consumer", ["-v", "--concurrency", "4", "--work", "0.005-0.02"], redis, tmp_path, name=f"c-{host.ip}"
        )
        for host in (host_c, host_d)
    ]
    wait_until(lambda: len(heartbeats(redis)) == 2, 20, "both consumers' heartbeats")
    producer = start_cli(
        host_b, "producer", ["--count", str(COUNT), "--rate", "300", "--wait", "--shutdown"], redis, tmp_path
    )
    assert producer.proc.wait(timeout=60) == 0, producer.describe()
    for consumer in consumers:
        try:
            code = consumer.proc.wait(timeout=30)  # no signal: the shutdown ends them
        except subprocess.TimeoutExpired:
            pytest.fail(f"consumer did not exit after the shutdown\n{consumer.describe()}")
        assert code == 0, consumer.describe()
    every = [item for consumer in consumers for item in consumer.items()]
    assert len(every) == len(set(every)) == COUNT
    assert stats_json(host_b, redis).count('"shutdown": "drain"') == 1
