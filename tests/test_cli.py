"""The producer, consumer and asyncq CLIs as real processes talking through Redis."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asyncq.core.envelope import decode
from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import ADDED_LINE, run, start


@pytest.mark.timeout(90)
async def test_one_producer_two_consumers_exactly_once(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    args = ["--queue", queue_name, "--work", "0-0.01", "-c", "5", "-v"]
    consumers = [start("consumer", args, redis_url, tmp_path, f"consumer-{n}") for n in range(2)]
    produced = run(
        "producer",
        ["--queue", queue_name, "--count", "500", "--rate", "500", "--wait", "-v"],
        redis_url=redis_url,
        timeout=60,
    )
    codes = [c.terminate() for c in consumers]
    assert produced.returncode == 0, produced.stderr
    assert "produced 500 items" in produced.stdout and "all processed after" in produced.stdout
    added = ADDED_LINE.findall(produced.stdout)
    assert len(added) == 500
    seen: Counter[str] = Counter()
    for code, consumer in zip(codes, consumers, strict=True):
        assert code == 0, consumer.describe()
        mine = consumer.items()
        assert mine, "each consumer processed some items"
        seen.update(mine)
        assert "processed" in consumer.stdout().splitlines()[-1]
    assert seen == Counter(added)  # every item exactly once
    assert int(await redis.get(Keys(queue_name).unfinished) or 0) == 0


async def test_drain_exits_when_queue_is_done(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    put = run("producer", ["--queue", queue_name, "--count", "1000", "--no-wait"], redis_url=redis_url)
    assert put.returncode == 0, put.stderr
    drained = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], redis_url=redis_url, timeout=60)
    assert drained.returncode == 0, drained.stderr
    assert "processed 1000 items" in drained.stdout
    assert await redis.llen(Keys(queue_name).queue) == 0


@pytest.mark.parametrize("name", ["producer", "consumer", "asyncq-stats"])
def test_wrong_password_is_one_line(name: str) -> None:
    with EmbeddedRedis(password="right-password-1") as server:
        url = f"redis://:wrong-password-2@127.0.0.1:{server.port}/0"
        if name == "asyncq-stats":
            result = run("asyncq", ["stats"], redis_url=url)
        else:
            result = run(name, ["--drain"] if name == "consumer" else [], redis_url=url)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "authentication failed" in result.stderr or "WRONGPASS" in result.stderr
        assert "wrong-password-2" not in result.stderr + result.stdout
        ok = run("producer", ["--count", "3", "--no-wait"], redis_url=server.url)
        assert ok.returncode == 0, ok.stderr


def test_watch_at_an_unreachable_url_is_one_line() -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    result = run("asyncq", ["watch"], redis_url=url, timeout=30)  # it used to retry forever
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot use Redis at {url.replace('s3cret-pass', '***')}: " + result.stderr.split(": ", 2)[2].strip()
    ]
    assert "s3cret-pass" not in result.stderr + result.stdout


def test_consumer_says_what_it_waits_for_at_start(queue_name: str) -> None:
    with EmbeddedRedis(password="start-line-pass") as server:
        url = f"redis://:start-line-pass@127.0.0.1:{server.port}/0"
        result = run("consumer", ["--queue", queue_name, "-c", "3", "--drain"], redis_url=url)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    redacted = f"redis://:***@127.0.0.1:{server.port}/0"
    assert re.fullmatch(
        rf"consumer [\w.-]+-\d+-[0-9a-f]{{6}}: waiting for items on queue {queue_name} at {re.escape(redacted)} "
        r"\(concurrency 3\)",
        first,
    ), first
    assert "start-line-pass" not in result.stdout + result.stderr


def test_bad_handler_is_a_clear_error(redis_url: str) -> None:
    result = run("consumer", ["--handler", "no_such_module:run"], redis_url=redis_url)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --handler: cannot import 'no_such_module'")


def test_oversized_item_is_refused(redis_url: str, queue_name: str) -> None:
    result = run("producer", ["--queue", queue_name, "--size", "5000", "--max-item-bytes", "1000"], redis_url=redis_url)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[0]]
        and "exceeds the limit of 1000 bytes" in result.stderr
    )


async def test_dead_letters_list_requeue_purge(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    keys = Keys(queue_name)
    put = run("producer", ["--queue", queue_name, "--count", "3", "--no-wait"], redis_url=redis_url)
    assert put.returncode == 0
    failing = run(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.handlers:always_fail", "--max-deliveries", "1", "--drain"],
        redis_url=redis_url,
        timeout=60,
    )
    assert failing.returncode == 0, failing.stderr
    assert await redis.llen(keys.dead) == 3
    listed = run("asyncq", ["dead-letters", "list", "--queue", queue_name, "--json"], redis_url=redis_url)
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(records) == 3 and all("RuntimeError: always fails" in r["reason"] for r in records)
    one = records[0]["id"]
    requeued = run("asyncq", ["dead-letters", "requeue", "--queue", queue_name, one], redis_url=redis_url)
    assert requeued.returncode == 0 and "requeued 1 item" in requeued.stdout
    assert await redis.llen(keys.queue) == 1
    assert decode(await redis.lindex(keys.queue, 0)).attempts == 0
    missing = run("asyncq", ["dead-letters", "requeue", "--queue", queue_name, "nope"], redis_url=redis_url)
    assert missing.returncode == 1 and "no dead letter with id: nope" in missing.stderr
    purged = run("asyncq", ["dead-letters", "purge", "--queue", queue_name, "--yes"], redis_url=redis_url)
    assert purged.returncode == 0 and "purged 2" in purged.stdout
    assert await redis.llen(keys.dead) == 0
