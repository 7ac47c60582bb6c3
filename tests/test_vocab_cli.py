"""The CLIs with the queue vocabulary (issue 15): --kind, producer --priority/--delay/--shutdown, asyncq reset,
stats; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import run, start

pytestmark = pytest.mark.timeout(120)


def stats(redis_url: str, queue: str) -> dict[str, object]:
    done = run("asyncq", ["stats", "--json", "--queue", queue], redis_url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def one_line_error(stderr: str) -> bool:
    return "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1 and stderr.startswith("error:")


def test_a_priority_queue_through_the_clis(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    q = ["--queue", queue_name]
    put = run("producer", [*q, "--kind", "priority", "--priority", "0-3", "--count", "40", "--no-wait"], redis_url)
    assert put.returncode == 0, put.stderr
    figures = stats(redis_url, queue_name)
    assert (figures["kind"], figures["depth"], figures["unfinished"]) == ("priority", 40, 40)
    wrong = run("consumer", [*q, "--drain"], redis_url)  # opened as fifo
    assert wrong.returncode == 1 and one_line_error(wrong.stderr), wrong.stderr
    assert "priority queue" in wrong.stderr and "--kind priority" in wrong.stderr
    drained = run("consumer", [*q, "--kind", "priority", "--drain", "--work", "0", "-v"], redis_url)
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.count("got element") == 40
    bad = run("producer", [*q, "--priority", "3"], redis_url)
    assert bad.returncode == 2 and "--kind priority" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("producer", [*q, "--kind", "priority", "--priority", "high"], redis_url)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    bad = run("consumer", [*q, "--kind", "stack"], redis_url)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_delayed_puts_are_shown_as_scheduled(redis_url: str, queue_name: str) -> None:
    q = ["--queue", queue_name]
    put = run("producer", [*q, "--delay", "30", "--count", "5", "--no-wait"], redis_url)
    assert put.returncode == 0, put.stderr
    figures = stats(redis_url, queue_name)
    assert (figures["depth"], figures["scheduled"], figures["unfinished"]) == (0, 5, 5)
    text = run("asyncq", ["stats", *q], redis_url, COLUMNS="100")
    assert "scheduled" in text.stdout and "fifo" in text.stdout, text.stdout


def test_producer_wait_shutdown_ends_the_consumers_and_reset_opens_the_name_again(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    q = ["--queue", queue_name]
    consumers = [start("consumer", [*q, "--work", "0-0.01"], redis_url, tmp_path, f"consumer{i}") for i in range(2)]
    producer = run("producer", [*q, "--count", "50", "--wait", "--shutdown"], redis_url)
    assert producer.returncode == 0, producer.stderr
    for c in consumers:
        assert c.wait(30) == 0, c.describe()
    assert sum(int(c.stdout().split("processed ")[1].split()[0]) for c in consumers) == 50
    assert stats(redis_url, queue_name)["shutdown"] == "drain"
    refused = run("producer", [*q, "--count", "1", "--no-wait"], redis_url)
    assert refused.returncode == 1 and one_line_error(refused.stderr), refused.stderr
    assert "asyncq reset" in refused.stderr
    reset = run("asyncq", ["reset", queue_name], redis_url)
    assert reset.returncode == 0 and "open again" in reset.stdout, reset.stderr
    again = run("producer", [*q, "--count", "1", "--no-wait"], redis_url)
    assert again.returncode == 0, again.stderr
    busy = run("asyncq", ["reset", queue_name, "--all"], redis_url)
    assert busy.returncode == 1 and one_line_error(busy.stderr), busy.stderr
    forced = run("asyncq", ["reset", queue_name, "--all", "--force"], redis_url)
    assert forced.returncode == 0 and "deleted" in forced.stdout, forced.stderr
    assert stats(redis_url, queue_name)["unfinished"] == 0
