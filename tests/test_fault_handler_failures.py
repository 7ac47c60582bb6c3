"""Handler failures: retries with exponential backoff kept in Redis, the delivery limit, --timeout, Reject.

The consumer runs ``tests.fault_handlers:behave``, which logs every call (with its start time) and then acts on
the item's ``mode``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.envelope import decode
from asyncq.core.keys import Keys
from tests.fault_support import calls, counts, dead_letters, state
from tests.harness import Proc, start, wait_until

HANDLER = "tests.fault_handlers:behave"


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[RedisQueue]:
    async with RedisQueue(queue_name, url=redis_url) as q:
        yield q


def _consumer(queue: str, redis_url: str, logdir: Path, *args: str, work: str = "0") -> Proc:
    return start(
        "consumer",
        ["--queue", queue, "--handler", HANDLER, *args],
        redis_url,
        logdir,
        "consumer",
        FAULT_RECORD_KEY=queue,
        FAULT_WORK=work,
    )


async def _put(queue: RedisQueue, item: dict[str, Any]) -> None:
    await queue.put(item)
    await queue.flush()


@pytest.mark.timeout(60)
async def test_always_failing_item_is_dead_lettered_after_exactly_max_deliveries(
    client: redis.Redis, queue: RedisQueue, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    consumer = _consumer(queue_name, redis_url, tmp_path, "--max-deliveries", "3", "--retry-base", "0.2")
    await _put(queue, {"data": "doomed", "mode": "fail"})
    wait_until(lambda: client.llen(keys.dead) == 1, 20, "the item in the dead letters")
    await queue.join()  # a dead letter counts as done
    wait_until(lambda: consumer.stderr().count("dead letter") >= 1, 5, "the dead letter's log line")

    [letter] = dead_letters(client, keys)
    assert letter["reason"] == "failed 3 times; last: RuntimeError: always failing on call 3", letter
    assert decode(letter["envelope"].encode()).payload == {"data": "doomed", "mode": "fail"}, letter
    assert len(calls(client, queue_name, "doomed")) == 3
    assert counts(client, queue_name) == {}
    left = state(client, keys)
    assert left["totals"] == {"enqueued": 1, "failed": 3, "retried": 2, "dead": 1}, left
    assert left["delayed"] == 0 and left["queue"] == 0, left
    assert consumer.terminate() == 0, consumer.describe()
    assert len(calls(client, queue_name, "doomed")) == 3, "called again after the dead letter"


@pytest.mark.timeout(60)
async def test_flaky_item_succeeds_on_third_delivery_with_backoff(
    client: redis.Redis, queue: RedisQueue, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    # Above the fetcher's 2 s blocking-pop timeout on purpose: a retry that falls due while the fetcher is
    # blocked is only promoted when the pop times out, so a shorter backoff can run up to 2 s late.
    base = 2.5
    consumer = _consumer(queue_name, redis_url, tmp_path, "--retry-base", str(base))
    await _put(queue, {"data": "flaky", "mode": "flaky", "fails": 2})
    # Between deliveries the item waits in Redis's sorted set of due times, not in the consumer's memory.
    wait_until(lambda: len(calls(client, queue_name, "flaky")) == 1, 20, "the first call")
    wait_until(lambda: client.zcard(keys.delayed) == 1, 2, "the item waiting in the delayed set")
    wait_until(lambda: counts(client, queue_name), 20, "the item to succeed")
    await queue.join()

    times = calls(client, queue_name, "flaky")
    assert len(times) == 3, times
    gaps = [b - a for a, b in pairwise(times)]
    # backoff(n) = base * 2**(n-1) * uniform(0.75, 1.25): the wait after the n-th failure
    for n, gap in enumerate(gaps, start=1):
        low, high = 0.75 * base * 2 ** (n - 1), 1.25 * base * 2 ** (n - 1)
        assert low <= gap <= high + 1.0, f"gap {n}: {gap:.3f} s, the backoff allows {low:.2f}-{high:.2f} s"
    assert counts(client, queue_name) == {"flaky": 1}
    left = state(client, keys)
    assert left["totals"] == {"enqueued": 1, "failed": 2, "retried": 2, "processed": 1}, left
    assert left["dead"] == 0, left
    assert consumer.terminate() == 0, consumer.describe()
    print(f"\nflaky item: processed once after 2 retries, gaps {[round(g, 3) for g in gaps]} s (base {base} s)")


@pytest.mark.timeout(60)
async def test_short_backoff_is_not_stretched_to_the_block_timeout(
    client: redis.Redis, queue: RedisQueue, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    base = 0.4
    consumer = _consumer(queue_name, redis_url, tmp_path, "--retry-base", str(base))
    await _put(queue, {"data": "flaky", "mode": "flaky", "fails": 1})
    wait_until(lambda: counts(client, queue_name), 20, "the item to succeed")
    first, second = calls(client, queue_name, "flaky")
    assert consumer.terminate() == 0, consumer.describe()
    assert 0.75 * base <= second - first <= 1.25 * base + 0.5, f"retried after {second - first:.2f} s"


@pytest.mark.timeout(60)
async def test_timeout_bounds_a_slow_handler(
    client: redis.Redis, queue: RedisQueue, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    args = ["--timeout", "0.5", "--max-deliveries", "2", "--retry-base", "0.1"]
    consumer = _consumer(queue_name, redis_url, tmp_path, *args, work="30")
    await _put(queue, {"data": "sleepy", "mode": "slow"})
    took = wait_until(lambda: client.llen(keys.dead) == 1, 15, "the slow item in the dead letters")
    await queue.join()
    [letter] = dead_letters(client, keys)
    assert letter["reason"] == "failed 2 times; last: timed out", letter
    times = calls(client, queue_name, "sleepy")
    assert len(times) == 2, times
    assert times[1] - times[0] >= 0.5 + 0.075, "the second call started before the first timed out"
    assert took < 10, f"two 0.5 s timeouts took {took:.1f} s"
    assert counts(client, queue_name) == {}
    assert consumer.terminate() == 0, consumer.describe()


@pytest.mark.timeout(60)
async def test_reject_dead_letters_at_once(
    client: redis.Redis, queue: RedisQueue, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    consumer = _consumer(queue_name, redis_url, tmp_path, "--max-deliveries", "5")
    await _put(queue, {"data": "refused", "mode": "reject"})
    await _put(queue, {"data": "fine"})
    wait_until(lambda: client.llen(keys.dead) == 1 and counts(client, queue_name), 20, "both items handled")
    await queue.join()
    [letter] = dead_letters(client, keys)
    assert letter["reason"] == "rejected: this item can never succeed", letter
    assert len(calls(client, queue_name, "refused")) == 1
    assert counts(client, queue_name) == {"fine": 1}
    left = state(client, keys)
    assert "retried" not in left["totals"], left
    assert left["totals"]["dead"] == 1 and left["totals"]["processed"] == 1, left
    assert consumer.terminate() == 0, consumer.describe()
