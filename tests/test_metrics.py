"""``consumer --metrics-port``: /metrics scraped over HTTP and parsed with prometheus-client's parser; /healthz."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from asyncq import RedisQueue
from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import Proc, run, start, wait_until

# Loopback only, and never through a proxy the environment may name.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def fail_every_third(item: Any) -> None:
    """A ``--handler`` for the consumer process: items whose ``n`` is a multiple of 3 fail, every time."""
    if item["n"] % 3 == 0:
        raise ValueError(f"item {item['n']} fails")


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of ``GET http://127.0.0.1:port/path``."""
    try:
        with _opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(port: int, proc: Proc) -> bool:
    """Does the metrics server answer /healthz (whatever its status)? AssertionError if the consumer exited."""
    try:
        get(port, "/healthz")
    except (urllib.error.URLError, ConnectionError):
        assert proc.alive(), f"the consumer exited:\n{proc.describe()}"
        return False
    return True


def scrape(port: int, queue: str) -> dict[str, float]:
    """Every sample of the scrape for ``queue``, by sample name (``asyncq_processed_total``, ...)."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.labels.get("queue") == queue and "le" not in sample.labels:
                samples[sample.name] = sample.value
    return samples


@pytest.fixture
def consumer(tmp_path: Path) -> Iterator[Any]:
    """Start ``consumer --metrics-port`` with extra arguments; stopped (SIGTERM) at the end."""
    started: list[Proc] = []

    def start_consumer(redis_url: str, queue: str, *args: str) -> tuple[Proc, int]:
        port = free_port()
        argv = ["--queue", queue, "--metrics-port", str(port), "--heartbeat", "0.5", *args]
        proc = start("consumer", argv, redis_url, tmp_path, f"consumer-{len(started)}")
        started.append(proc)
        wait_until(lambda: answers(port, proc), 30, "the metrics server to answer")
        return proc, port

    yield start_consumer
    for proc in started:
        try:
            proc.terminate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_counters_match_the_items_processed(
    redis: aioredis.Redis, redis_url: str, queue_name: str, consumer: Any
) -> None:
    _, port = consumer(redis_url, queue_name, "--work", "0")
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"n": n} for n in range(40)])
        await asyncio.wait_for(q.join(), 30)
    m = scrape(port, queue_name)
    assert m["asyncq_processed_total"] == 40
    assert m["asyncq_failed_total"] == 0
    assert m["asyncq_retried_total"] == 0
    assert m["asyncq_dead_lettered_total"] == 0
    assert m["asyncq_enqueue_to_start_seconds_count"] == 40
    assert m["asyncq_handler_duration_seconds_count"] == 40
    assert m["asyncq_enqueue_to_start_seconds_sum"] > 0
    assert m["asyncq_in_progress"] == 0
    assert m["asyncq_queue_depth"] == 0
    assert m["asyncq_redis_up"] == 1


async def test_failures_retries_and_dead_letters_are_counted(
    redis: aioredis.Redis, redis_url: str, queue_name: str, consumer: Any
) -> None:
    handler = ["--handler", "tests.test_metrics:fail_every_third", "--max-deliveries", "2", "--retry-base", "0"]
    _, port = consumer(redis_url, queue_name, *handler)
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"n": n} for n in range(30)])  # 10 fail twice: retried once, then dead-lettered
        await asyncio.wait_for(q.join(), 30)
    m = scrape(port, queue_name)
    assert m["asyncq_processed_total"] == 20
    assert m["asyncq_failed_total"] == 20
    assert m["asyncq_retried_total"] == 10
    assert m["asyncq_dead_lettered_total"] == 10
    assert m["asyncq_enqueue_to_start_seconds_count"] == 40  # 30 first deliveries + 10 second ones
    assert m["asyncq_handler_duration_seconds_count"] == 40
    assert await redis.llen(f"asyncq:{{{queue_name}}}:dead") == 10


def test_queue_depth_gauge_and_unknown_paths(redis_url: str, queue_name: str, consumer: Any) -> None:
    _, port = consumer(redis_url, queue_name, "--work", "60", "--concurrency", "1", "--prefetch", "0", "--grace", "0")
    done = run("producer", ["--queue", queue_name, "--count", "6", "--no-wait"], redis_url=redis_url, timeout=30)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: scrape(port, queue_name)["asyncq_in_progress"] == 1, 20, "1 item in progress")
    m = scrape(port, queue_name)
    assert m["asyncq_queue_depth"] == 5
    assert m["asyncq_processed_total"] == 0
    assert get(port, "/nowhere")[0] == 404


def test_healthz_follows_redis(private_redis: EmbeddedRedis, queue_name: str, consumer: Any) -> None:
    _, port = consumer(private_redis.url, queue_name, "--work", "0")
    assert get(port, "/healthz") == (200, "ok\n")

    private_redis.stop()
    wait_until(lambda: get(port, "/healthz")[0] == 503, 20, "/healthz to answer 503")
    assert get(port, "/healthz")[1].startswith("redis unreachable")
    m = scrape(port, queue_name)  # /metrics still answers, and says Redis is down
    assert m["asyncq_redis_up"] == 0

    private_redis.start()
    wait_until(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz to answer 200 again")
    assert scrape(port, queue_name)["asyncq_redis_up"] == 1


def test_healthz_is_503_without_a_heartbeat(redis_url: str, queue_name: str, consumer: Any) -> None:
    import redis as sync_redis

    _, port = consumer(redis_url, queue_name, "--work", "0", "--heartbeat", "30")
    assert get(port, "/healthz")[0] == 200
    client = sync_redis.Redis.from_url(redis_url)
    try:
        beats = list(client.scan_iter(match=f"asyncq:{{{queue_name}}}:heartbeat:*"))
        assert len(beats) == 1
        client.delete(*beats)  # as if it had expired
    finally:
        client.close()
    assert get(port, "/healthz") == (503, "heartbeat missing or expired\n")
