"""Graceful shutdown: SIGTERM while items are in progress finishes them, gives back the rest, exits 0.

A second SIGTERM exits at once; what the consumer held is then recovered by the others' sweep.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from asyncq.core.keys import Keys
from tests.fault_support import consumer_id, counts, state
from tests.harness import start, wait_until

HANDLER = "tests.fault_handlers:record"


def _started(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:started").items()}


def _produce(queue: str, redis_url: str, tmp_path: Path, count: int) -> list[str]:
    producer = start(
        "producer",
        ["--queue", queue, "--count", str(count), "--size", "32", "--no-wait", "-v"],
        redis_url,
        tmp_path,
        "producer",
    )
    assert producer.wait(timeout=30) == 0, producer.describe()
    return producer.added()


@pytest.mark.timeout(60)
def test_sigterm_drains_in_progress_items_and_loses_nothing(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    grace = 10.0
    first = start(
        "consumer",
        ["--queue", queue_name, "--handler", HANDLER, "--concurrency", "5", "--grace", str(grace)],
        redis_url,
        tmp_path,
        "first",
        FAULT_RECORD_KEY=queue_name,
        FAULT_WORK="0.5-1",
    )
    wait_until(lambda: consumer_id(client, keys, first.pid), 20, "the first consumer's heartbeat")
    first_id = consumer_id(client, keys, first.pid)
    assert first_id is not None
    put = _produce(queue_name, redis_url, tmp_path, 40)

    # SIGTERM once 7 jobs started (5 run at a time, 5 more are claimed ahead, the rest wait in the queue).
    wait_until(lambda: len(_started(client, queue_name)) >= 7, 20, "the first consumer to be busy")
    first.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    in_progress = set(_started(client, queue_name)) - set(counts(client, queue_name))
    assert in_progress, "nothing was in progress at SIGTERM: the test proved nothing"
    rc = first.wait(timeout=grace + 10)
    took = time.monotonic() - sent
    assert rc == 0, first.describe()
    assert took < grace, f"exit took {took:.1f} s, the grace is {grace} s"
    assert "Traceback" not in first.stderr(), first.describe()

    # Everything it started, it finished and acknowledged; it left nothing behind.
    done_by_first = counts(client, queue_name)
    assert set(_started(client, queue_name)) == set(done_by_first), "an item was abandoned mid-job"
    assert in_progress <= set(done_by_first)
    assert f"processed {len(done_by_first)} items" in first.stdout(), first.describe()
    left = state(client, keys)
    assert first_id not in left["processing"], left
    assert first_id not in left["heartbeats"], left
    assert left["queue"] == len(put) - len(done_by_first), left
    assert left["unfinished"] == len(put) - len(done_by_first), left

    # Another consumer processes the rest; each item exactly once overall.
    second = start(
        "consumer",
        ["--queue", queue_name, "--handler", HANDLER, "--concurrency", "20", "--drain"],
        redis_url,
        tmp_path,
        "second",
        FAULT_RECORD_KEY=queue_name,
    )
    assert second.wait(timeout=30) == 0, second.describe()
    assert counts(client, queue_name) == dict.fromkeys(put, 1)
    assert _started(client, queue_name) == dict.fromkeys(put, 1), "an item was delivered twice"
    assert state(client, keys)["totals"].get("recovered") is None
    print(
        f"\nSIGTERM with {len(in_progress)} item(s) in progress: exit 0 after {took:.2f} s; "
        f"{len(done_by_first)} done by it, {len(put) - len(done_by_first)} by the next consumer, 0 lost, 0 twice"
    )


@pytest.mark.timeout(60)
def test_second_sigterm_exits_at_once_and_recovery_redelivers(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    args = ["--queue", queue_name, "--handler", HANDLER, "--heartbeat", "0.5"]
    stuck = start(
        "consumer",
        [*args, "--concurrency", "2", "-v"],  # -v: the first SIGTERM is logged (INFO)
        redis_url,
        tmp_path,
        "stuck",
        FAULT_RECORD_KEY=queue_name,
        FAULT_WORK="30",
    )
    wait_until(lambda: consumer_id(client, keys, stuck.pid), 20, "the consumer's heartbeat")
    put = _produce(queue_name, redis_url, tmp_path, 2)
    wait_until(lambda: len(_started(client, queue_name)) == 2, 10, "both 30 s jobs to start")
    helper = start("consumer", args, redis_url, tmp_path, "helper", FAULT_RECORD_KEY=queue_name)
    wait_until(lambda: consumer_id(client, keys, helper.pid), 20, "the helper's heartbeat")

    stuck.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM received" in stuck.stderr(), 5, "the consumer to take the first SIGTERM")
    stuck.proc.send_signal(signal.SIGTERM)
    assert stuck.wait(timeout=3) == 128 + signal.SIGTERM, stuck.describe()
    assert "second SIGTERM" in stuck.stderr(), stuck.describe()
    wait_until(lambda: len(counts(client, queue_name)) == 2, 10, "the helper to process the recovered items")
    assert counts(client, queue_name) == dict.fromkeys(put, 1)
    assert state(client, keys)["totals"].get("recovered") == 2
    assert helper.terminate() == 0, helper.describe()
