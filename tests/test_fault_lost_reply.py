"""A put whose reply is lost, and the twins it used to leave in the queue (issue 9, item 1).

A connection that drops after Redis ran the PUT script but before its reply arrived leaves the client unable
to tell whether the put happened; the library sends the batch again. The put must still be enqueued once.
Twins left by older versions (the same envelope twice) must never kill a worker or hold ``join()`` forever.
The lost replies are real: ``tests.proxy`` forwards the EVALSHA, drops Redis's reply and cuts the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.envelope import Message, decode
from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import calls, counts, dead_letters, state
from tests.harness import start, wait_until
from tests.proxy import Proxy


@pytest.fixture
def direct(private_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(private_redis.url)
    yield c
    c.close()


def _held(client: redis.Redis, keys: Keys) -> list[Message]:
    return [decode(raw) for raw in client.lrange(keys.queue, 0, -1)]


def _assert_enqueued_once(client: redis.Redis, keys: Keys, expected: set[str]) -> None:
    """Redis holds exactly one envelope per expected item, and counts each once."""
    held = _held(client, keys)
    data = Counter(str(env.payload["data"]) for env in held)
    twice = {d: n for d, n in data.items() if n > 1}
    left = state(client, keys)
    assert not twice, f"enqueued more than once: {len(twice)} item(s), e.g. {list(twice.items())[:3]}; {left}"
    assert set(data) == expected, left
    assert len({env.id for env in held}) == len(expected), left
    assert left["queue"] == len(expected), left
    assert left["totals"].get("enqueued") == len(expected), left
    assert left["unfinished"] == len(expected), left


async def _consume_all(url: str, name: str, expected: set[str]) -> Counter[str]:
    """Take every item with a consumer of our own, ack it, and join(); returns how often each data was seen."""
    seen: Counter[str] = Counter()
    async with RedisQueue(name, url=url) as q:
        async with asyncio.timeout(30):
            while sum(seen.values()) < len(expected):
                message = await q.get_message()
                seen[message.payload["data"]] += 1
                q.ack(message)
            await q.join()
        assert await q.qsize() == 0
    return seen


@pytest.mark.timeout(90)
async def test_library_put_whose_reply_is_lost_is_enqueued_once(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str
) -> None:
    keys = Keys(queue_name)
    expected: set[str] = set()
    with Proxy(private_redis.port) as proxy:
        async with RedisQueue(queue_name, url=proxy.url) as q:
            # Batches: the reply of each round's one round trip is lost once, then it is resent.
            for round_ in range(3):
                proxy.lose_replies(1)
                items = [{"data": f"batch{round_}-{i}"} for i in range(5)]
                async with asyncio.timeout(30):
                    assert await q.put_many(items) == 5  # every put returned
                expected.update(str(item["data"]) for item in items)
                assert proxy.lost == round_ + 1
            # Single puts.
            for i in range(4):
                proxy.lose_replies(1)
                async with asyncio.timeout(30):
                    await q.put({"data": f"single-{i}"})
                expected.add(f"single-{i}")
                assert proxy.lost == 3 + i + 1
            proxy.disarm()
    _assert_enqueued_once(direct, keys, expected)
    seen = await _consume_all(private_redis.url, queue_name, expected)
    assert seen == Counter(dict.fromkeys(expected, 1)), seen
    left = state(direct, keys)
    assert left["unfinished"] == 0 and left["queue"] == 0 and left["dead"] == 0, left
    assert not any(left["processing"].values()), left


@pytest.mark.timeout(120)
def test_producer_cli_puts_whose_replies_are_lost_are_enqueued_once(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    count = 300
    with Proxy(private_redis.port) as proxy:
        proxy.lose_replies(3)
        producer = start(
            "producer",
            ["--queue", queue_name, "--count", str(count), "--producers", "3", "--batch", "20", "--no-wait", "-v"],
            proxy.url,
            tmp_path,
            "producer",
        )
        assert producer.wait(60) == 0, producer.describe()
        assert proxy.lost == 3, producer.describe()
    added = producer.added()
    assert len(added) == count and len(set(added)) == count, producer.describe()
    _assert_enqueued_once(direct, keys, set(added))

    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.fault_handlers:record", "--concurrency", "5", "--drain"],
        private_redis.url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )
    assert consumer.wait(60) == 0, consumer.describe()
    done = counts(direct, queue_name)
    assert done == dict.fromkeys(added, 1), {k: v for k, v in done.items() if v != 1}
    left = state(direct, keys)
    assert left["unfinished"] == 0 and left["queue"] == 0 and left["dead"] == 0, left
    assert left["totals"].get("processed") == count, left


def _push_twins(client: redis.Redis, keys: Keys, payload: dict[str, object], item_id: str = "twin-0001") -> bytes:
    """The same envelope twice in the queue, counted twice, as a put resent by an older version left it."""
    body = json.dumps(payload, separators=(",", ":"))
    raw = f'{{"attempts":0,"id":"{item_id}","enqueued_at":{time.time():.6f},"payload":{body}}}'.encode()
    pipe = client.pipeline(transaction=True)
    pipe.lpush(keys.queue, raw, raw)
    pipe.incrby(keys.unfinished, 2)
    pipe.hincrby(keys.totals, "enqueued", 2)
    pipe.execute()
    return raw


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.timeout(90)
async def test_twins_in_the_queue_never_kill_a_worker(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str, tmp_path: Path, concurrency: int
) -> None:
    keys = Keys(queue_name)
    _push_twins(direct, keys, {"data": "twin", "mode": "slow"})  # slow: with two workers both are in progress
    async with RedisQueue(queue_name, url=private_redis.url) as q:
        await q.put_many([{"data": f"after-{i}"} for i in range(20)])
    consumer = start(
        "consumer",
        [
            "--queue",
            queue_name,
            "--handler",
            "tests.fault_handlers:behave",
            "--drain",
            "--prefetch",
            "2",
            "--concurrency",
            str(concurrency),
        ],
        private_redis.url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
        FAULT_WORK="0.5",
    )

    def diagnostics() -> str:
        return f"{state(direct, keys)}\ncounts {counts(direct, queue_name)}\n{consumer.describe()}"

    try:
        wait_until(lambda: not consumer.alive(), 40, "consumer --drain to exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None
    assert consumer.wait(5) == 0, diagnostics()
    done = counts(direct, queue_name)
    assert {k: v for k, v in done.items() if k != "twin"} == {f"after-{i}": 1 for i in range(20)}, diagnostics()
    assert 1 <= done.get("twin", 0) <= 2, diagnostics()
    left = state(direct, keys)
    assert left["unfinished"] == 0, diagnostics()
    assert left["queue"] == 0 and left["delayed"] == 0 and left["dead"] == 0, diagnostics()
    assert not any(left["processing"].values()), diagnostics()
    assert "Traceback" not in consumer.stderr(), diagnostics()


@pytest.mark.timeout(90)
async def test_twins_that_both_fail_end_as_dead_letters_and_join_returns(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    _push_twins(direct, keys, {"data": "doomed-twin", "mode": "fail"})
    consumer = start(
        "consumer",
        [
            "--queue",
            queue_name,
            "--handler",
            "tests.fault_handlers:behave",
            "--concurrency",
            "1",
            "--max-deliveries",
            "2",
            "--retry-base",
            "0.1",
        ],
        private_redis.url,
        tmp_path,
        "consumer",
        FAULT_RECORD_KEY=queue_name,
    )

    def diagnostics() -> str:
        return f"{state(direct, keys)}\ndead {dead_letters(direct, keys)}\n{consumer.describe()}"

    async with RedisQueue(queue_name, url=private_redis.url) as q:
        try:
            async with asyncio.timeout(30):
                await q.join()
        except TimeoutError:
            raise AssertionError(f"join() did not return within 30 s\n{diagnostics()}") from None
    wait_until(lambda: not direct.exists(keys.delayed) and direct.llen(keys.queue) == 0, 10, "nothing left")
    left = state(direct, keys)
    assert left["unfinished"] == 0, diagnostics()
    assert left["queue"] == 0 and left["delayed"] == 0, diagnostics()
    assert not any(left["processing"].values()), diagnostics()
    letters = dead_letters(direct, keys)
    assert 1 <= len(letters) <= 2, diagnostics()
    assert all('"id":"twin-0001"' in letter["envelope"] for letter in letters), diagnostics()
    assert 2 <= len(calls(direct, queue_name, "doomed-twin")) <= 4, diagnostics()
    assert consumer.terminate() == 0, diagnostics()
    assert "Traceback" not in consumer.stderr(), diagnostics()


@pytest.mark.timeout(30)
def test_proxy_loses_exactly_the_replies_it_is_told_to(private_redis: EmbeddedRedis, direct: redis.Redis) -> None:
    """The harness itself: Redis runs the command whose reply is lost; errors and other commands go through."""
    script = "return redis.call('INCR', KEYS[1])"
    with Proxy(private_redis.port) as proxy:
        c = redis.Redis.from_url(proxy.url, socket_timeout=5)
        try:
            proxy.lose_replies(1)
            with pytest.raises(redis.exceptions.NoScriptError):  # an error reply is not lost, and not counted
                c.evalsha("0" * 40, 1, "n")
            assert c.set("plain", "1") and c.get("plain") == b"1"
            with pytest.raises(redis.ConnectionError):
                c.eval(script, 1, "n")
            assert proxy.lost == 1
            assert direct.get("n") == b"1"  # it ran: the client just never heard
            assert c.eval(script, 1, "n") == 2  # disarmed after one
            proxy.lose_replies(None)
            for _ in range(3):
                with pytest.raises(redis.ConnectionError):
                    c.eval(script, 1, "n")
            proxy.disarm()
            assert c.eval(script, 1, "n") == 6
            assert proxy.lost == 4
        finally:
            c.close()


@pytest.mark.timeout(90)
async def test_lost_reply_of_a_put_that_found_partial_room_is_not_repeated(
    private_redis: EmbeddedRedis, direct: redis.Redis, queue_name: str
) -> None:
    """With maxsize, the PUT script takes only what fits; a resend after its lost reply must not push again
    what it took, nor lose what it left (offered again once there is room)."""
    keys = Keys(queue_name)
    seen: Counter[str] = Counter()
    expected = {f"room-{i}" for i in range(12)}

    async def consume(q: RedisQueue) -> None:
        while True:
            message = await q.get_message()
            seen[message.payload["data"]] += 1
            q.ack(message)

    with Proxy(private_redis.port) as proxy:
        async with (
            RedisQueue(queue_name, url=proxy.url, maxsize=4) as producer,
            RedisQueue(queue_name, url=private_redis.url) as consumer,
        ):
            proxy.lose_replies(2)
            worker = asyncio.create_task(consume(consumer))
            try:
                async with asyncio.timeout(30):
                    assert await producer.put_many([{"data": f"room-{i}"} for i in range(12)]) == 12
                    assert proxy.lost == 2
                    await producer.join()
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
    left = state(direct, keys)
    assert seen == Counter(dict.fromkeys(expected, 1)), f"{sorted(seen.items())}\n{left}"
    assert left["totals"].get("enqueued") == 12, left
    assert left["unfinished"] == 0 and left["queue"] == 0, left
