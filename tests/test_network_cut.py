"""Reliability: a machine loses its network for 5 s (or 15 s) in the middle of a run, then gets it back.

Redis, the producer and the consumer each run on their own machine (network namespace). The cut is real: the
machine's cable is pulled out of the switch, so its TCP connections stall without being closed (no RST, no
FIN) and reconnects fail until the link returns. Nothing may be lost: every item put is processed at least
once (duplicates are allowed by the at-least-once contract, and reported), `producer --wait` returns on its
own and the consumer still shuts down cleanly on SIGTERM.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns
from tests.cli_procs import duplicates, heartbeats, queue_state, start_cli, stats_json
from tests.harness import Proc, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(180)]

COUNT = 300
RATE = 25  # items/s: production spans COUNT / RATE = 12 s, so the cut falls in the middle of it
CUT_AFTER = 3.0  # seconds of production before the cut
RECOVERY = 45.0  # after the link is back: producer --wait must have returned within this

# 5 s: TCP's retransmissions outlast the cut, so no client-side timeout needs to fire. 15 s: longer than the
# clients' socket timeouts and the heartbeat's TTL (3 x 2 s), so commands time out with their replies lost.
CUTS = [
    pytest.param("consumer", 5.0, id="consumer-5s"),
    pytest.param("producer", 5.0, id="producer-5s"),
    pytest.param("consumer", 15.0, id="consumer-15s"),
    pytest.param("producer", 15.0, id="producer-15s"),
]


@pytest.fixture
def net() -> Iterator[netns.Network]:
    netns.skip_unless_available()
    with netns.Network(3) as network:
        yield network


@pytest.mark.parametrize(("victim", "cut_for"), CUTS)
def test_link_cut_loses_nothing(net: netns.Network, tmp_path: Path, victim: str, cut_for: float) -> None:
    redis_host, producer_host, consumer_host = net.hosts
    redis = netns.start_redis(redis_host, tmp_path)
    consumer = start_cli(consumer_host, "consumer", ["-v", "--concurrency", "5", "--work", "0.01"], redis, tmp_path)
    wait_until(lambda: len(heartbeats(redis)) == 1, 20, "the consumer's heartbeat")

    producer = start_cli(
        producer_host,
        "producer",
        ["--count", str(COUNT), "--size", "32", "--rate", str(RATE), "--producers", "2", "--wait", "-v"],
        redis,
        tmp_path,
    )
    procs: list[Proc] = [producer, consumer]

    cut_log: list[str] = []

    def diagnostics() -> str:
        return (
            " ".join(cut_log)
            + "\n"
            + "".join(p.describe() for p in procs)
            + stats_json(redis_host, redis)
            + f"\n{queue_state(redis)}"
        )

    # The cut starts once items flow end to end, so it hits the run mid-stream, not at start-up.
    wait_until(lambda: len(consumer.items()) >= CUT_AFTER * RATE, 20, f"{CUT_AFTER} s of items at the consumer")
    cut_host = consumer_host if victim == "consumer" else producer_host
    processed_before = len(consumer.items())
    cut_host.link_down()
    cut_at = time.monotonic()
    cut_log.append(f"link of {victim} ({cut_host.ip}) down at {time.strftime('%H:%M:%S')},")
    try:
        assert not redis.ping(frm=cut_host, timeout=1.0), "the link cut did not cut"
        time.sleep(max(0.0, cut_for - (time.monotonic() - cut_at)))  # on purpose: the cut lasts cut_for seconds
        processed_during = len(consumer.items()) - processed_before
    finally:
        cut_host.link_up()
        cut_log.append(f"up at {time.strftime('%H:%M:%S')}.")
    assert redis.ping(frm=cut_host), "the link did not come back"
    assert producer.proc.poll() is None or producer.proc.returncode == 0, (
        "the producer died during the cut\n" + diagnostics()
    )

    try:
        producer_rc = producer.proc.wait(timeout=RECOVERY)
    except subprocess.TimeoutExpired:
        pytest.fail(f"producer --wait did not return within {RECOVERY} s of the link's return\n{diagnostics()}")
    recovered_in = time.monotonic() - cut_at - cut_for
    assert producer_rc == 0, diagnostics()
    assert f"produced {COUNT} items" in producer.stdout(), diagnostics()

    consumer_rc = consumer.terminate(timeout=30)
    assert consumer_rc == 0, diagnostics()

    # The producer's -v lines ("added <hex>") say what was put; payloads are 32 random hex characters, so a
    # repeated one at the consumer is a redelivery (or a put retried after it had in fact succeeded).
    put, items = producer.added(), consumer.items()
    assert len(put) == COUNT, f"the producer reported {len(put)} puts of {COUNT}\n{diagnostics()}"
    lost = set(put) - set(items)
    assert not lost, f"{len(lost)} of {COUNT} items put were never processed: {sorted(lost)[:10]}\n{diagnostics()}"
    assert set(items) <= set(put), f"items processed that were never put: {sorted(set(items) - set(put))[:10]}"
    state = queue_state(redis)
    assert state["queue"] == 0, state
    assert state["dead"] == 0, state
    assert sum(state["processing"].values()) == 0, state
    dups = duplicates(items)
    print(
        f"cut {victim} for {cut_for} s: {processed_before} items processed before it, "
        f"{processed_during} during it; "
        f"producer --wait returned {recovered_in:.1f} s after the link came back; "
        f"{len(items)} deliveries of {COUNT} items, {len(dups)} duplicated: {dups}; redis: {state}"
    )
