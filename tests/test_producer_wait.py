"""``producer`` (``--wait`` is the default) says what it waits for instead of blocking silently (issue 10, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import run, start, wait_until


@pytest.mark.timeout(90)
def test_waiting_producer_says_so_and_sees_a_consumer_come(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    producer = start("producer", ["--queue", queue_name, "--count", "10"], redis_url, tmp_path, "producer")
    # it must say something with nobody to process
    wait_until(lambda: producer.stderr().endswith("\n"), 30, "the producer's first line")
    first = producer.stderr().splitlines()[0]
    assert first == "waiting for 10 items to be processed: 0 done, 10 to go; no consumer is running"
    args = ["--queue", queue_name, "--work", "0.3", "--concurrency", "1"]
    consumer = start("consumer", args, redis_url, tmp_path, "consumer")
    code = producer.wait(60)  # the consumer brings the producer's end about
    assert consumer.terminate() == 0, consumer.describe()
    assert code == 0, producer.describe()
    seen = producer.stderr().splitlines()
    running = [line for line in seen if line.endswith("; 1 consumer running")]
    assert running and running[0].startswith("waiting for 10 items to be processed: "), seen
    assert "produced 10 items" in producer.stdout() and "all processed after" in producer.stdout()


def test_no_wait_returns_at_once_and_says_nothing_of_waiting(redis_url: str, queue_name: str) -> None:
    done = run("producer", ["--queue", queue_name, "--count", "10", "--no-wait"], redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert "waiting" not in done.stderr
    assert "produced 10 items" in done.stdout and "all processed" not in done.stdout
