"""Items that are valid but unusual: large dead letters, size limits that differ between producer and consumer,
envelopes written by another program, and items JSON cannot encode (issue 9, items 3, 6 and the envelope checks).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.envelope import decode
from asyncq.core.keys import Keys
from tests.fault_support import calls, counts, dead_letters, state
from tests.harness import run, start, wait_until

BEHAVE = "tests.fault_handlers:behave"


@pytest.mark.parametrize("size", [1_000, 200_000])
@pytest.mark.timeout(90)
async def test_dead_letter_of_a_large_item_keeps_it_whole_and_requeue_processes_it(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path, size: int
) -> None:
    keys = Keys(queue_name)
    blob = "b" * size  # 1,000: the same path for an item well under the old 64 KiB cut
    # flaky with fails=1: the first call fails (and with one delivery allowed, dead-letters it); the second works
    item = {"data": "big", "mode": "flaky", "fails": 1, "blob": blob}
    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", BEHAVE, "--max-deliveries", "1"],
        redis_url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put(item)
        await q.flush()
    wait_until(lambda: client.llen(keys.dead) == 1, 20, "the big item in the dead letters")

    [letter] = dead_letters(client, keys)
    kept = len(letter["envelope"])
    assert kept > size, f"the dead letter keeps {kept} characters of an envelope of {size + 100}"
    assert decode(letter["envelope"].encode()).payload == item

    requeued = run("asyncq", ["dead-letters", "requeue", "--all", "--queue", queue_name], redis_url)
    assert requeued.returncode == 0, requeued
    assert "requeued 1 item(s)" in requeued.stdout, requeued
    assert "not asyncq items" not in requeued.stderr, requeued

    def diagnostics() -> str:
        return f"{state(client, keys)}\n{consumer.describe()}"

    wait_until(lambda: counts(client, queue_name) == {"big": 1}, 20, f"the requeued item processed\n{diagnostics()}")
    assert len(calls(client, queue_name, "big")) == 2
    left = state(client, keys)
    assert left["unfinished"] == 0 and left["queue"] == 0 and left["dead"] == 0, diagnostics()
    assert consumer.terminate() == 0, diagnostics()


@pytest.mark.timeout(90)
def test_item_put_under_a_larger_producer_limit_is_processed_by_a_default_consumer(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    produced = run(
        "producer",
        ["--queue", queue_name, "--size", "1500000", "--count", "1", "--max-item-bytes", "4000000", "--no-wait"],
        redis_url,
    )
    assert produced.returncode == 0, produced
    consumer = start("consumer", ["--queue", queue_name, "--work", "0", "--drain"], redis_url, tmp_path, "consumer")

    def diagnostics() -> str:
        return f"{state(client, keys)}\ndead {[d['reason'] for d in dead_letters(client, keys)]}\n{consumer.describe()}"

    try:
        wait_until(lambda: not consumer.alive(), 30, "consumer --drain to exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None
    assert consumer.wait(5) == 0, diagnostics()
    left = state(client, keys)
    assert left["dead"] == 0, diagnostics()
    assert left["unfinished"] == 0 and left["queue"] == 0, diagnostics()
    assert left["totals"].get("processed") == 1, diagnostics()


def _foreign_envelope(attempts: str, item_id: str, data: str) -> bytes:
    payload = json.dumps({"data": data, "mode": "fail"}, separators=(",", ":"))
    return f'{{"attempts":{attempts},"id":"{item_id}","enqueued_at":{time.time():.6f},"payload":{payload}}}'.encode()


@pytest.mark.timeout(60)
async def test_envelope_with_invalid_attempts_is_dead_lettered_at_once(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    # Another program's envelopes: attempts that the delivery count can never raise past max_deliveries.
    client.lpush(keys.queue, _foreign_envelope("-3", "neg-1", "negative"), _foreign_envelope("true", "bool-1", "bool"))
    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", BEHAVE, "--max-deliveries", "3", "--retry-base", "0.05"],
        redis_url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put({"data": "fine"})
        await q.flush()

    def diagnostics() -> str:
        return f"{state(client, keys)}\ndead {dead_letters(client, keys)}\n{consumer.describe(1500)}"

    wait_until(lambda: counts(client, queue_name) == {"fine": 1}, 20, "the valid item processed")
    try:
        wait_until(lambda: client.llen(keys.dead) == 2, 10, "both foreign envelopes in the dead letters")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None
    letters: list[dict[str, Any]] = dead_letters(client, keys)
    assert {json.loads(d["envelope"])["id"] for d in letters} == {"neg-1", "bool-1"}, diagnostics()
    for letter in letters:
        assert "attempts" in letter["reason"], letter
    left = state(client, keys)
    assert left["totals"].get("retried", 0) == 0, diagnostics()
    assert left["queue"] == 0 and left["delayed"] == 0 and left["unfinished"] == 0, diagnostics()
    assert calls(client, queue_name, "negative") == [] and calls(client, queue_name, "bool") == [], diagnostics()
    assert consumer.terminate() == 0, diagnostics()


def _nested(depth: int) -> list[Any]:
    item: list[Any] = []
    for _ in range(depth):
        item = [item]
    return item


@pytest.mark.timeout(30)
async def test_put_of_a_deeply_nested_item_raises_type_error(
    client: redis.Redis, redis_url: str, queue_name: str
) -> None:
    keys = Keys(queue_name)
    deep = _nested(100_000)
    async with RedisQueue(queue_name, url=redis_url) as q:
        with pytest.raises(TypeError):
            await q.put(deep)
        with pytest.raises(TypeError):
            await q.put_many([{"data": "first"}, {"nested": deep}])
        await q.flush()
    left = state(client, keys)
    assert left["queue"] == 0 and left["unfinished"] == 0, left
