"""Reliability: redis-server restarts in the middle of a run; producer and consumers carry on by themselves.

The queue's server runs with ``appendonly yes`` and ``appendfsync always`` (the ``private_redis`` fixture), so
every write Redis acknowledged survives the restart. The handlers record into the session's Redis, which stays
up, so counting deliveries does not depend on the server being restarted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import assert_drained, counts, state
from tests.harness import Proc, start, wait_until

COUNT = 2000
RATE = 200  # items/s: production spans 10 s, the restart falls in its middle


@pytest.fixture
def record(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_redis_restart_mid_run_loses_nothing(
    private_redis: EmbeddedRedis, record: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path, how: str
) -> None:
    keys = Keys(queue_name)
    queue = redis.Redis.from_url(private_redis.url)
    handler = ["--queue", queue_name, "--handler", "tests.fault_handlers:record", "--concurrency", "5"]
    consumers = [
        start(
            "consumer",
            handler,
            private_redis.url,
            tmp_path,
            f"consumer-{n}",
            FAULT_RECORD_URL=redis_url,
            FAULT_RECORD_KEY=queue_name,
            FAULT_WORK="0-0.01",
        )
        for n in range(2)
    ]
    producer = start(
        "producer",
        ["--queue", queue_name, "--count", str(COUNT), "--size", "32", "--rate", str(RATE), "--wait", "-v"],
        private_redis.url,
        tmp_path,
        "producer",
    )
    procs: list[Proc] = [producer, *consumers]

    def diagnostics() -> str:
        text = "".join(p.describe() for p in procs)
        try:
            text += f"\n{state(queue, keys)}"
        except redis.RedisError as exc:
            text += f"\nredis: {exc}"
        return text

    wait_until(lambda: len(counts(record, queue_name)) >= 500, 30, "500 items processed before the restart")
    private_redis.restart(kill=how == "sigkill", down_for=2.0)
    processed_at_restart = len(counts(record, queue_name))
    assert all(p.alive() for p in procs), "a process died with Redis\n" + diagnostics()

    try:
        rc = producer.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("producer --wait did not return within 60 s of the restart\n" + diagnostics())
    assert rc == 0, diagnostics()
    assert f"produced {COUNT} items" in producer.stdout(), diagnostics()
    for proc in consumers:
        assert proc.alive(), "a consumer stopped after the restart\n" + diagnostics()

    try:
        left = assert_drained(queue, keys, consumers, diagnostics)
    finally:
        queue.close()

    put = producer.added()
    seen = counts(record, queue_name)
    assert len(put) == COUNT == len(set(put)), diagnostics()
    missing = set(put) - set(seen)
    assert not missing, f"{len(missing)} items put were never processed, e.g. {sorted(missing)[:5]}\n{diagnostics()}"
    assert set(seen) <= set(put)
    duplicates = sum(seen.values()) - len(seen)
    # Each loop logs one line when the outage starts and one when it ends; no tracebacks.
    for proc in procs:
        err = proc.stderr()
        assert "Traceback" not in err, proc.describe()
        assert "available again" in err, proc.describe()
    print(
        f"\nredis restart ({how}, 2 s down) after {processed_at_restart} of {COUNT} items: 0 lost, "
        f"{duplicates} duplicates; totals {left['totals']}"
    )
