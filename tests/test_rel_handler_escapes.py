"""Issue 9, item 8 and the blocked-loop warning: what a handler does must not kill its worker or be
misreported.

- A handler that raises ``CancelledError`` (nobody cancelled the worker), another ``BaseException``,
  ``SystemExit`` or ``KeyboardInterrupt`` counts as a failure: the item is retried, then dead-lettered past
  ``--max-deliveries``, and the worker goes on with the next item. With ``--concurrency 1`` a dead worker
  would stop everything, so "the normal items after it are processed" proves the worker survived.
- A handler that blocks the event loop (``time.sleep`` inside ``async def``) makes the heartbeat late: the
  warning must say that the event loop was blocked, and for how long, not that Redis was unreachable.

The consumers are real processes running ``tests.rel_handlers``; the items are put with ``RedisQueue``.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.fault_support import Proc, counts, dead_letters, start, state, traceback_free, wait_until

MAX_DELIVERIES = 2


async def _put(url: str, queue: str, items: list[dict[str, Any]]) -> None:
    async with RedisQueue(queue, url=url) as q:
        await q.put_many(items)
        await q.flush()


def _consumer(queue: str, url: str, logdir: Path, handler: str, *args: str) -> Proc:
    return start(
        "consumer",
        ["--queue", queue, "--handler", f"tests.rel_handlers:{handler}", *args],
        url,
        logdir,
        "consumer",
        FAULT_RECORD_KEY=queue,
    )


def _calls(client: redis.Redis, queue: str, data: str) -> int:
    return sum(1 for raw in client.lrange(f"{queue}:calls", 0, -1) if json.loads(raw)["data"] == data)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["cancel", "base", "exit", "interrupt"])
async def test_handler_raising_base_exception_fails_the_item_not_the_worker(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path, kind: str
) -> None:
    keys = Keys(queue_name)
    consumer = _consumer(
        queue_name,
        redis_url,
        tmp_path,
        "raising",
        "--concurrency",
        "1",
        "--max-deliveries",
        str(MAX_DELIVERIES),
        "--retry-base",
        "0.1",
        "--retry-cap",
        "0.2",
    )
    bad = f"bad-{kind}"
    normal = [f"ok-{n}" for n in range(5)]
    # The bad item first in line: a worker it killed would never get to the normal ones.
    await _put(redis_url, queue_name, [{"data": bad, "raise": kind}, *({"data": d} for d in normal)])

    def diagnostics() -> str:
        return consumer.describe() + f"\n{state(client, keys)}\ncounts {counts(client, queue_name)}"

    with contextlib.suppress(AssertionError):  # judged just below, with the reason
        wait_until(
            lambda: set(counts(client, queue_name)) >= set(normal) or not consumer.alive(),
            15,
            "the normal items after the bad one",
        )
    assert consumer.alive(), f"the consumer process died of the handler's {kind}\n{diagnostics()}"
    assert counts(client, queue_name).keys() >= set(normal), (
        f"the worker stopped after the handler raised {kind}: normal items not processed\n{diagnostics()}"
    )
    wait_until(lambda: client.llen(keys.dead) == 1, 20, f"the {kind} item in the dead letters")
    wait_until(lambda: client.get(keys.unfinished) == b"0", 10, "unfinished to reach 0")

    assert counts(client, queue_name) == dict.fromkeys(normal, 1), diagnostics()
    [letter] = dead_letters(client, keys)
    assert f'"data":"{bad}"' in letter["envelope"], letter
    assert _calls(client, queue_name, bad) == MAX_DELIVERIES, (
        f"the {kind} item should be tried {MAX_DELIVERIES} times (retried, then dead-lettered)\n{diagnostics()}"
    )
    left = state(client, keys)
    assert left["unfinished"] == 0 and left["queue"] == 0 and left["delayed"] == 0, diagnostics()
    assert consumer.terminate(timeout=30) == 0, diagnostics()
    assert traceback_free(consumer.stderr()), diagnostics()
    assert "never retrieved" not in consumer.stderr(), diagnostics()


_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s|sec|seconds?)\b")
_LATE = re.compile(r"heartbeat|blocked|unreachable", re.IGNORECASE)


@pytest.mark.timeout(60)
async def test_blocked_event_loop_is_reported_as_blocked_not_as_redis_unreachable(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    block = 3.0  # twice the heartbeat TTL (3 x 0.5 s): the heartbeat key expires while the loop is blocked
    consumer = _consumer(queue_name, redis_url, tmp_path, "blocking", "--concurrency", "1", "--heartbeat", "0.5")
    await _put(redis_url, queue_name, [{"data": "blocker", "block": block}, {"data": "after"}])

    def diagnostics() -> str:
        return consumer.describe() + f"\n{state(client, keys)}"

    wait_until(lambda: len(counts(client, queue_name)) == 2, 30, "both items processed")
    wait_until(lambda: _LATE.search(consumer.stderr()), 10, "the late-heartbeat warning")
    lines = [line for line in consumer.stderr().splitlines() if _LATE.search(line)]
    assert lines, diagnostics()
    warning = lines[0]
    assert "unreachable" not in warning, f"a blocked event loop reported as a Redis outage: {warning!r}"
    assert "event loop" in warning and "blocked" in warning, f"the warning should name the blocked loop: {warning!r}"
    figures = [float(x) for x in _SECONDS.findall(warning)]
    assert any(f >= 2.0 for f in figures), f"the warning should name how long the loop was blocked: {warning!r}"
    wait_until(lambda: client.get(keys.unfinished) == b"0", 10, "unfinished to reach 0")
    assert counts(client, queue_name) == {"blocker": 1, "after": 1}, diagnostics()
    assert consumer.terminate(timeout=30) == 0, diagnostics()
    assert traceback_free(consumer.stderr()), diagnostics()
