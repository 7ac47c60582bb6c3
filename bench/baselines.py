"""The baselines bench/run.py measures beside asyncq, each run as its own process (this file's subcommands).

- ``ceiling``: an in-process ``asyncio.Queue``, one producer and one consumer coroutine, no-op: the ceiling.
- ``produce``: raw redis-py, pipelined ``LPUSH`` in batches of 100 (feeds both raw consumers).
- ``consume --mode naive``: the naive reliable loop, one ``BLMOVE`` and one ``LREM`` per item.
- ``consume --mode batched``: the unreliable batched loop, ``RPOP key 100`` (``BRPOP`` when empty).

Each prints one JSON line; ``consume`` first prints ``ready`` once connected. Times are ``time.time()`` so that
the producer's first put and the consumer's last item can be compared across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import redis.asyncio as aioredis

PAYLOAD = b"%030d"  # 30 bytes of payload per item, like the asyncq cases


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


async def produce(url: str, key: str, count: int, batch: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    await client.ping()
    first = time.time()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(sent, sent + n):
                pipe.lpush(key, PAYLOAD % i)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["ceiling", "produce", "consume"])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--key", default="bench:raw")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--mode", choices=["naive", "batched"], default="batched")
    args = parser.parse_args()
    if args.what == "ceiling":
        result = asyncio.run(ceiling(args.count))
    elif args.what == "produce":
        result = asyncio.run(produce(args.url, args.key, args.count, args.batch))
    else:
        result = asyncio.run(consume(args.url, args.key, args.count, args.mode))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
