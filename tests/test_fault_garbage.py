"""Bad input from other programs: values pushed straight into the queue's keys never crash a consumer.

Every value that is not an asyncq envelope goes to the dead-letter list with its reason, the good items around
it are processed, and a key of the wrong type is reported once on stderr, by name, until it is fixed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.fault_support import counts, dead_letters, state
from tests.harness import start, wait_until

HANDLER = "tests.fault_handlers:record"
MAX_ITEM_BYTES = 1024 * 1024  # the consumer's default

# (name, raw value, what the dead letter's reason must say)
BAD: list[tuple[str, bytes, str]] = [
    ("not JSON", b"hello, world", "not JSON"),
    ("JSON object of the wrong shape", b'{"hello": "world"}', "without the envelope fields"),
    ("valid JSON list", b'[1, 2, "three"]', "without the envelope fields"),
    ("JSON number", b"42", "without the envelope fields"),
    ("empty value", b"", "not JSON"),
    (
        "envelope fields of the wrong type",
        b'{"attempts":"0","id":7,"enqueued_at":"now","payload":1}',
        "envelope field attempts",
    ),
    # Another program's attempts that the Lua bump cannot raise: retried forever before.
    ("negative attempts", b'{"attempts":-3,"id":"x1","enqueued_at":1.5,"payload":1}', "envelope field attempts"),
    ("boolean attempts", b'{"attempts":true,"id":"x2","enqueued_at":1.5,"payload":1}', "envelope field attempts"),
    ("non-UTF-8 bytes", b"\xff\xfe\x00\x81 binary \xc3\x28", "not JSON"),
]


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.mark.timeout(60)
async def test_bad_values_go_to_dead_letters_and_good_items_are_processed(
    client: redis.Redis, raw: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    good: list[str] = []
    async with RedisQueue(queue_name, url=redis_url) as q:
        for n, (_, value, _) in enumerate(BAD):
            for k in range(3):
                data = f"good-{n}-{k}"
                await q.put({"data": data})
                good.append(data)
            await raw.lpush(keys.queue, value)
        await q.put({"data": "good-last"})
        good.append("good-last")
    # Over the consumer's own max_item_bytes, but put by a producer allowed larger items: an item all the same.
    async with RedisQueue(queue_name, url=redis_url, max_item_bytes=4 * MAX_ITEM_BYTES) as big:
        await big.put({"data": "good-huge", "blob": "x" * (MAX_ITEM_BYTES + 1000)})
        good.append("good-huge")

    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", HANDLER, "--concurrency", "4"],
        redis_url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )
    wait_until(
        lambda: len(counts(client, queue_name)) == len(good) and client.llen(keys.dead) == len(BAD),
        30,
        "the good items processed and the bad ones dead-lettered",
    )
    # Still consuming after every bad value: one more good item goes through.
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put({"data": "good-after"})
        good.append("good-after")
    wait_until(lambda: "good-after" in counts(client, queue_name), 15, "an item put after the bad ones processed")
    assert consumer.alive(), consumer.describe()
    assert counts(client, queue_name) == dict.fromkeys(good, 1)

    letters = dead_letters(client, keys)
    assert len(letters) == len(BAD), letters
    by_envelope = {letter["envelope"]: letter for letter in letters}
    for name, value, reason in BAD:
        kept = value.decode("utf-8", errors="replace")
        assert kept in by_envelope, f"no dead letter for the {name}"
        letter = by_envelope[kept]
        assert reason in letter["reason"], f"{name}: reason {letter['reason']!r}"
        assert letter["failed_at"] > 0 and letter["id"], letter

    left = state(client, keys)
    assert left["queue"] == 0, left
    assert left["unfinished"] == 0, left  # never put through the queue, so never counted
    assert left["totals"]["dead"] == len(BAD), left
    assert left["totals"]["processed"] == len(good), left
    assert left["totals"].get("retried", 0) == 0, left
    assert consumer.terminate() == 0, consumer.describe()
    assert "Traceback" not in consumer.stderr(), consumer.describe()
    print(f"\ngarbage: {len(BAD)} bad values dead-lettered with their reasons, {len(good)} good items processed")


def wrongtype_errors(client: redis.Redis) -> int:
    """WRONGTYPE errors the server has answered so far (its INFO errorstats)."""
    return int(client.info("errorstats").get("errorstat_WRONGTYPE", {}).get("count", 0))


@pytest.mark.timeout(60)
async def test_wrong_key_type_is_reported_once_and_consuming_resumes_when_fixed(
    client: redis.Redis, raw: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    await raw.set(keys.delayed, "another program wrote this")
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"data": f"item-{n}"} for n in range(5)])

    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", HANDLER],
        redis_url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )

    def naming_lines() -> list[str]:
        return [line for line in consumer.stderr().splitlines() if keys.delayed in line]

    wait_until(naming_lines, 20, "the wrong-type key reported on stderr")
    # Several more failed claims (backoff 0.1 s doubling, capped at 5 s), each a WRONGTYPE error at the server.
    reported = wrongtype_errors(client)
    wait_until(lambda: wrongtype_errors(client) >= reported + 3, 20, "three more failed claims after the report")
    assert consumer.alive(), consumer.describe()
    assert len(naming_lines()) == 1, consumer.describe()
    assert "string" in naming_lines()[0] and "zset" in naming_lines()[0], naming_lines()
    assert counts(client, queue_name) == {}

    await raw.delete(keys.delayed)
    wait_until(lambda: len(counts(client, queue_name)) == 5, 15, "consuming to resume once the key is fixed")
    assert consumer.terminate() == 0, consumer.describe()
    assert len(naming_lines()) == 1, consumer.describe()
    assert "Traceback" not in consumer.stderr(), consumer.describe()
    assert state(client, keys)["unfinished"] == 0
    print("\nwrong key type reported once:", naming_lines()[0])
