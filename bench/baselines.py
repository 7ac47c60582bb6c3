"""The baselines bench/run.py measures beside asyncq, each run as its own process (this file's subcommands).

- ``ceiling``: an in-process ``asyncio.Queue``, one producer and one consumer coroutine, no-op: the ceiling.
- ``produce``: raw redis-py, pipelined ``LPUSH`` in batches of 100 (feeds both raw consumers).
- ``consume --mode naive``: the naive reliable loop, one ``BLMOVE`` and one ``LREM`` per item.
- ``consume --mode batched``: the unreliable batched loop, ``RPOP key 100`` (``BRPOP`` when empty).
- ``put1 --mode lpush|evalsha``: one coroutine awaiting each ``LPUSH`` (or ``EVALSHA`` of a one-line LPUSH
  script) in turn: what one awaited put costs without asyncq (``bench/library.py put1`` is the asyncq side).

``produce --size N`` sends payloads of exactly N bytes (default 30).

Each prints one JSON line; ``consume`` first prints ``ready`` once connected. Times are ``time.time()`` so that
the producer's first put and the consumer's last item can be compared across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

PAYLOAD = b"%030d"  # 30 bytes of payload per item, like the asyncq cases
LPUSH_SCRIPT = "return redis.call('LPUSH', KEYS[1], ARGV[1])"


async def ceiling(count: int) -> dict[str, float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def produce() -> None:
        for n in range(count):
            await queue.put(PAYLOAD % n)

    async def consume() -> None:
        for _ in range(count):
            await queue.get()
            queue.task_done()

    start = time.perf_counter()
    await asyncio.gather(produce(), consume())
    await queue.join()
    return {"seconds": time.perf_counter() - start}


async def produce(url: str, key: str, count: int, batch: int, size: int = 30) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    await client.ping()
    first = time.time()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(sent, sent + n):
                pipe.lpush(key, b"%0*d" % (size, i))  # the item's number, zero-padded to exactly size bytes
            await pipe.execute()
        sent += n
    last = time.time()
    await client.aclose()
    return {"first": first, "last": last}


async def consume(url: str, key: str, count: int, mode: str) -> dict[str, float]:
    client = aioredis.Redis.from_url(url, socket_timeout=10)
    processing = key + ":processing"
    await client.ping()
    print("ready", flush=True)
    got = 0
    while got < count:
        if mode == "naive":
            raw = await client.blmove(key, processing, 1, "RIGHT", "LEFT")
            if isinstance(raw, bytes):
                await client.lrem(processing, -1, raw)  # type: ignore[arg-type]  # bytes are fine
                got += 1
            continue
        items = await client.rpop(key, 100)
        if items:
            got += len(items)
        elif await client.brpop([key], timeout=1) is not None:
            got += 1
    last = time.time()
    await client.aclose()
    return {"last": last}


async def awaited(call: Callable[[], Awaitable[object]], count: int) -> dict[str, float]:
    """Await ``call()`` ``count`` times in turn: seconds in all, and the p50 and p99 of one call in ms."""
    await call()  # connected, the script cached: the loop times the steady state only
    times = []
    start = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        await call()
        times.append(time.perf_counter() - before)
    seconds = time.perf_counter() - start
    cuts = statistics.quantiles(times, n=100)
    return {"seconds": seconds, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


async def put1(url: str, key: str, count: int, mode: str) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    payload = PAYLOAD % 0
    if mode == "lpush":
        result = await awaited(lambda: client.lpush(key, payload), count)
    else:
        sha = await client.script_load(LPUSH_SCRIPT)
        result = await awaited(lambda: client.evalsha(sha, 1, key, payload), count)
    await client.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["ceiling", "produce", "consume", "put1"])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--key", default="bench:raw")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--mode", choices=["naive", "batched", "lpush", "evalsha"], default="batched")
    parser.add_argument("--size", type=int, default=30, help="produce: bytes per payload")
    args = parser.parse_args()
    if args.what == "ceiling":
        result = asyncio.run(ceiling(args.count))
    elif args.what == "produce":
        result = asyncio.run(produce(args.url, args.key, args.count, args.batch, args.size))
    elif args.what == "put1":
        result = asyncio.run(put1(args.url, args.key, args.count, args.mode))
    else:
        result = asyncio.run(consume(args.url, args.key, args.count, args.mode))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
