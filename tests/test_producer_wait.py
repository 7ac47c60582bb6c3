"""``producer`` (``--wait`` is the default) says what it waits for instead of blocking silently (issue 10, item 2)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.procs import run, spawn, stop


def _lines(stream: subprocess.Popen[str]) -> Iterator[str]:
    assert stream.stderr is not None
    for line in stream.stderr:
        yield line.rstrip("\n")


@pytest.mark.timeout(90)
def test_waiting_producer_says_so_and_sees_a_consumer_come(redis_url: str, queue_name: str) -> None:
    producer = spawn("producer", "--queue", queue_name, "--count", "10", redis_url=redis_url)
    lines = _lines(producer)
    try:
        first = next(lines)  # blocks until the producer says something: it must, with nobody to process
        assert first == "waiting for 10 items to be processed: 0 done, 10 to go; no consumer is running"
        consumer = spawn("consumer", "--queue", queue_name, "--work", "0.3", "--concurrency", "1", redis_url=redis_url)
        try:
            seen = list(lines)  # to the producer's end, which the consumer brings about
        finally:
            code, _, err = stop(consumer)
        assert code == 0, err
    finally:
        if producer.poll() is None:
            producer.kill()
        out, _ = producer.communicate(timeout=30)
    assert producer.returncode == 0, seen
    running = [line for line in seen if line.endswith("; 1 consumer running")]
    assert running and running[0].startswith("waiting for 10 items to be processed: "), seen
    assert "produced 10 items" in out and "all processed after" in out


def test_no_wait_returns_at_once_and_says_nothing_of_waiting(redis_url: str, queue_name: str) -> None:
    done = run("producer", "--queue", queue_name, "--count", "10", "--no-wait", redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert "waiting" not in done.stderr
    assert "produced 10 items" in done.stdout and "all processed" not in done.stdout
