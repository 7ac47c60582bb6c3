"""The demo's items, the handler its consumers run and the producer process that puts them.

Items are numbered, ``{"n": 7, "work": 0.23}``, so the demo can prove that none was lost: the handler
records every item it processed in a Redis hash (item number -> times processed), and the demo compares
those and the dead letters with what was put. An item may carry ``"fail": "once"`` (it fails on its first
delivery, so it is retried) or ``"fail": "always"`` (the poison item: it ends in the dead letters).

Consumers load the handler with ``--handler asyncq.tools.demo_work:handle``; it finds Redis and the queue in
``REDIS_URL`` and ``ASYNCQ_QUEUE``. A producer is ``python -m asyncq.tools.demo_work --producer K ...``: it puts
its share of the items through ``RedisQueue``, then waits in ``join()``, printing one JSON line after each.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Annotated, Any

import redis.asyncio as aioredis
import typer

from asyncq.core.connection import connect
from asyncq.core.keys import Keys, check_name
from asyncq.core.queue import RedisQueue
from asyncq.producer.ratelimit import RateLimiter

ONCE = "once"
ALWAYS = "always"


class DemoFailure(Exception):
    """The failure the demo asks for: the worker retries it, and dead-letters the poison item in the end."""


def processed_key(queue: str) -> str:
    """Hash: item number -> how many times the handler finished it (more than once: redelivered)."""
    return f"asyncq-demo:{{{check_name(queue)}}}:processed"


def failures_key(queue: str) -> str:
    """Hash: item number -> how many of its deliveries failed."""
    return f"asyncq-demo:{{{check_name(queue)}}}:failures"


async def reset(client: aioredis.Redis, queue: str) -> None:
    """A clean start: every key of the demo's queue and the handler's records deleted."""
    keys = Keys(queue)
    stale = [k async for k in client.scan_iter(match=keys.prefix + "*", count=1000)]
    await client.delete(*stale, processed_key(queue), failures_key(queue))


_client: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    global _client
    if _client is None:
        # The records share the queue's hash tag: on a cluster they live on the queue's node. The consumer's
        # few coroutines (the demo runs 4 per consumer) stay well within the pool.
        queue = os.environ.get("ASYNCQ_QUEUE", "asyncq-demo")
        url = os.environ["REDIS_URL"]
        _client = connect(url, key=Keys(queue).queue, max_connections=16, name="asyncq-demo-handler")
    return _client


async def handle(item: Any) -> None:
    """Sleep ``item["work"]`` seconds, fail as ``item["fail"]`` says, record the item as processed."""
    queue = os.environ.get("ASYNCQ_QUEUE", "asyncq-demo")
    n = str(item["n"])
    await asyncio.sleep(float(item.get("work", 0)))
    fail = item.get("fail")
    if fail == ALWAYS or (fail == ONCE and int(await _redis().hget(failures_key(queue), n) or 0) == 0):
        await _redis().hincrby(failures_key(queue), n, 1)
        raise DemoFailure("poison item" if fail == ALWAYS else "fails once, on purpose")
    await _redis().hincrby(processed_key(queue), n, 1)


def items(producer: int, producers: int, count: int, work: tuple[float, float], special: dict[int, str]) -> list[Any]:
    """The items of producer ``producer`` (0-based): numbers ``producer + 1``, then every ``producers``-th."""
    return [
        {"n": n, "work": round(random.uniform(*work), 3), **({"fail": special[n]} if n in special else {})}
        for n in range(producer + 1, count + 1, producers)
    ]


def parse_work(text: str) -> tuple[float, float]:
    """``"0.5"`` or ``"0.1-0.5"`` as (low, high) seconds; ``ValueError`` otherwise."""
    low, sep, high = text.partition("-")
    try:
        span = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise ValueError(f"expected SECONDS or MIN-MAX, got {text!r}") from None
    if not 0 <= span[0] <= span[1]:
        raise ValueError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return span


app = typer.Typer(add_completion=False)


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


@app.command()
def produce(
    producer: Annotated[int, typer.Option(min=0, help="This producer's number, 0-based.")],
    producers: Annotated[int, typer.Option(min=1)],
    count: Annotated[int, typer.Option(min=1, help="Items of all producers.")],
    queue: Annotated[str, typer.Option()] = "asyncq-demo",
    rate: Annotated[float, typer.Option(min=0, help="This producer's items/s (0: no cap).")] = 0.0,
    work: Annotated[str, typer.Option(help="MIN-MAX seconds of work per item.")] = "0-0.1",
    fail_once: Annotated[int, typer.Option(help="The number of the item that fails once (0: none).")] = 0,
    poison: Annotated[int, typer.Option(help="The number of the item that always fails (0: none).")] = 0,
) -> None:
    """Put this producer's items, then wait in join() until every item of every producer is done."""
    span = parse_work(work)
    special = {n: kind for n, kind in ((fail_once, ONCE), (poison, ALWAYS)) if n}
    mine = items(producer, producers, count, span, special)

    async def go() -> None:
        start = time.perf_counter()
        async with RedisQueue[Any](queue, url=os.environ["REDIS_URL"]) as q:
            limiter = RateLimiter(rate) if rate > 0 else None
            sent = 0
            while sent < len(mine):
                want = min(10, len(mine) - sent)
                if limiter is not None:
                    want = await limiter.take(want)
                await q.put_many(mine[sent : sent + want])
                sent += want
            await q.flush()
            _say("put", items=sent, seconds=time.perf_counter() - start)
            await q.join()
            _say("joined", seconds=time.perf_counter() - start)

    asyncio.run(go())


if __name__ == "__main__":
    app()
