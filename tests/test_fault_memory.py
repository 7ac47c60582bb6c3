"""Redis out of memory, and eviction policies that may drop queue keys (issue 9, items 4 and 5).

The full Redis is real: a private redis-server whose queue is filled through the library, then capped with
``CONFIG SET maxmemory`` just below what it uses, under ``noeviction``: Redis refuses writes that need memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import state
from tests.harness import run, start, wait_until

SHA = re.compile(r"\b[0-9a-f]{40}\b")


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A private redis-server without persistence (it is filled, then capped)."""
    embedded = EmbeddedRedis()
    embedded.start()
    yield embedded
    embedded.cleanup()


@pytest.fixture
def direct(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(server.url)
    yield c
    c.close()


async def _fill_then_cap(server: EmbeddedRedis, direct: redis.Redis, name: str, count: int) -> None:
    """Put ``count`` items, then set maxmemory just below the memory in use (noeviction): Redis is full."""
    async with RedisQueue(name, url=server.url) as q:
        for start_at in range(0, count, 5000):
            await q.put_many({"data": f"{i:08d}", "pad": "p" * 100} for i in range(start_at, start_at + 5000))
    used = int(direct.info("memory")["used_memory"])
    direct.config_set("maxmemory-policy", "noeviction")
    direct.config_set("maxmemory", str(used - 256 * 1024))
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        direct.set("probe", "x" * 1000)  # the server really refuses writes now
    assert direct.llen(Keys(name).queue) == count


@pytest.mark.timeout(120)
async def test_consumer_started_on_a_full_redis_drains_the_queue(
    server: EmbeddedRedis, direct: redis.Redis, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    count = 30_000
    await _fill_then_cap(server, direct, queue_name, count)
    consumer = start(
        "consumer",
        ["--queue", queue_name, "--work", "0", "--concurrency", "20", "--drain"],
        server.url,
        tmp_path,
        "consumer",
    )

    def diagnostics() -> str:
        return f"{state(direct, keys)}\n{consumer.describe()}"

    try:
        wait_until(lambda: not consumer.alive(), 40, "consumer --drain to exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None
    assert consumer.wait(5) == 0, diagnostics()
    left = state(direct, keys)
    assert left["queue"] == 0 and left["unfinished"] == 0 and left["dead"] == 0, diagnostics()
    assert not any(left["processing"].values()), diagnostics()
    assert left["totals"].get("processed") == count, diagnostics()
    assert "Traceback" not in consumer.stderr(), diagnostics()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_producer_on_a_full_redis_says_so_once_waits_and_completes(
    server: EmbeddedRedis, direct: redis.Redis, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    count = 20_000
    await _fill_then_cap(server, direct, queue_name, count)
    producer = start(
        "producer", ["--queue", queue_name, "--count", "50", "--no-wait"], server.url, tmp_path, "producer"
    )

    def memory_lines() -> list[str]:
        return [line for line in producer.stderr().splitlines() if "memory" in line.lower()]

    wait_until(lambda: memory_lines() or not producer.alive(), 20, "the producer to report the full Redis")
    assert producer.alive(), f"the producer gave up on a full Redis instead of waiting\n{producer.describe()}"
    consumer = start(
        "consumer", ["--queue", queue_name, "--work", "0", "--concurrency", "20"], server.url, tmp_path, "c"
    )

    def diagnostics() -> str:
        return f"{state(direct, keys)}\n{producer.describe()}\n{consumer.describe()}"

    try:
        wait_until(lambda: not producer.alive(), 40, "the producer to complete once memory was freed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None
    assert producer.wait(5) == 0, diagnostics()
    wait_until(lambda: state(direct, keys)["unfinished"] == 0, 30, f"every item processed\n{diagnostics()}")

    err = producer.stderr()
    # One line says so (a later line may say that Redis accepts puts again); Redis's own OOM text is not repeated.
    lines = [line for line in err.splitlines() if re.search(r"out of memory|maxmemory|\bOOM\b", line, re.IGNORECASE)]
    assert len(lines) == 1, f"expected one line about the full Redis, got {lines}"
    assert re.search(r"out of memory", lines[0], re.IGNORECASE), lines
    assert not SHA.search(err), f"a script's sha in the producer's output:\n{err}"
    assert "Traceback" not in err, err
    left = state(direct, keys)
    assert left["totals"].get("enqueued") == count + 50, diagnostics()
    assert left["totals"].get("processed") == count + 50, diagnostics()
    assert left["queue"] == 0 and left["dead"] == 0, diagnostics()
    assert consumer.terminate() == 0, diagnostics()


@pytest.mark.timeout(60)
def test_producer_and_consumer_warn_about_an_evicting_policy(
    server: EmbeddedRedis, direct: redis.Redis, queue_name: str
) -> None:
    direct.config_set("maxmemory-policy", "allkeys-lru")
    produced = run("producer", ["--queue", queue_name, "--count", "1", "--no-wait"], server.url)
    consumed = run("consumer", ["--queue", queue_name, "--work", "0", "--drain"], server.url)
    for name, done in (("producer", produced), ("consumer", consumed)):
        assert done.returncode == 0, done
        warned = [line for line in done.stderr.splitlines() if "maxmemory-policy" in line]
        assert len(warned) == 1, f"{name} did not warn about maxmemory-policy allkeys-lru:\n{done.stderr}"
        assert "allkeys-lru" in warned[0], warned


@pytest.mark.timeout(60)
def test_no_eviction_warning_under_noeviction(server: EmbeddedRedis, direct: redis.Redis, queue_name: str) -> None:
    direct.config_set("maxmemory-policy", "noeviction")
    produced = run("producer", ["--queue", queue_name, "--count", "1", "--no-wait"], server.url)
    assert produced.returncode == 0, produced
    assert "maxmemory-policy" not in produced.stderr, produced.stderr
