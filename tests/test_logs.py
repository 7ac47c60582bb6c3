"""``--log-format json``: every line a CLI writes, on stdout and stderr, is one JSON object; per-item lines carry
the item id, the consumer id and the latency. Text stays the seed's friendly lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from asyncq import RedisQueue
from asyncq.cli.logs import ITEMS
from asyncq.tools.embedded import free_port
from tests.harness import ITEM_LINE, run, start, wait_until


def json_lines(text: str, stream: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as a JSON object (failing on the first that is not)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{stream} line {number} is not JSON: {line!r}\n--- all of it:\n{text}") from None
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


async def test_consumer_json_lines(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"data": f"{n:04x}"} for n in range(12)])
    done = run(
        "consumer",
        ["--queue", queue_name, "--work", "0", "--drain", "-v", "--log-format", "json"],
        redis_url=redis_url,
    )
    assert done.returncode == 0, done.stderr
    out = json_lines(done.stdout, "stdout")
    json_lines(done.stderr, "stderr")
    items = [r for r in out if r["logger"] == ITEMS]
    assert len(items) == 12
    assert sorted(r["message"].split("<")[1].split(">")[0] for r in items) == [f"{n:04x}" for n in range(12)]
    assert len({r["item_id"] for r in items}) == 12
    [consumer_id] = {r["consumer_id"] for r in items}
    assert consumer_id.split("-")[-2] == str(done_pid(consumer_id))
    for record in items:
        assert isinstance(record["latency"], float) and 0 <= record["latency"] < 60
        assert record["level"] == "info"


def done_pid(consumer_id: str) -> int:
    """The pid inside a consumer id (``host-pid-random``)."""
    return int(consumer_id.rsplit("-", 2)[-2])


def test_producer_json_lines(redis_url: str, queue_name: str) -> None:
    done = run(
        "producer",
        ["--queue", queue_name, "--count", "7", "--no-wait", "-v", "--log-format", "json"],
        redis_url=redis_url,
    )
    assert done.returncode == 0, done.stderr
    out = json_lines(done.stdout, "stdout")
    json_lines(done.stderr, "stderr")
    assert len([r for r in out if r["logger"] == ITEMS]) == 7


def test_consumer_json_lines_through_a_graceful_stop(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    args = ["--queue", queue_name, "--work", "0", "-v", "--log-format", "json"]
    proc = start("consumer", args, redis_url, tmp_path, "consumer")
    wait_until(lambda: "waiting for items" in proc.stdout(), 30, "the consumer's start line")
    put = run("producer", ["--queue", queue_name, "--count", "5"], redis_url=redis_url)  # waits for the 5 to be done
    assert put.returncode == 0, put.stderr
    assert proc.terminate() == 0, proc.describe()
    out, err = proc.stdout(), proc.stderr()
    assert len([r for r in json_lines(out, "stdout") if r["logger"] == ITEMS]) == 5
    warnings = json_lines(err, "stderr")
    # The normal way to stop a consumer: logged at INFO (shown with -v), not as a warning.
    assert any("SIGTERM" in r["message"] and r["level"] == "info" for r in warnings), err


def test_a_failure_is_a_json_line_too(queue_name: str) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done = run("consumer", ["--queue", queue_name, "--log-format", "json"], redis_url=nowhere, timeout=60)
    assert done.returncode == 1
    [record] = json_lines(done.stderr, "stderr")
    assert record["level"] == "error"
    assert "cannot use Redis at" in record["message"]


def test_text_format_keeps_the_seed_lines(redis_url: str, queue_name: str) -> None:
    put = run("producer", ["--queue", queue_name, "--count", "4", "--no-wait"], redis_url=redis_url)
    assert put.returncode == 0, put.stderr
    done = run("consumer", ["--queue", queue_name, "--work", "0", "--drain", "-v"], redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert len(ITEM_LINE.findall(done.stdout)) == 4
    assert "Consumer " in done.stdout and " seconds." in done.stdout
    assert "processed 4 items" in done.stdout
