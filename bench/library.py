"""asyncq's library driven directly (not through the CLIs), each run as its own process (this file's subcommands),
for the target rows of bench/targets.py.

- ``put1``: one coroutine awaiting each ``RedisQueue.put(item)`` in turn, the asyncq side of the "one awaited
  put" rows (``baselines.py put1`` is the raw redis-py side, timed by the same loop).
- ``fill``: ``put_many`` of COUNT items, no consumer: what the waiting items hold in Redis (the memory rows).

Items are the JSON string ``"xx..."`` of exactly ``--size`` bytes of JSON text (the quotes included). Each
subcommand prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from baselines import awaited

from asyncq import RedisQueue

FILL_BATCH = 100  # items per put_many call: bounds the client's memory at 256 KiB items


def item(size: int) -> str:
    """A JSON value whose text is exactly ``size`` bytes: a string, two bytes of it the quotes."""
    if size < 2:
        raise ValueError("a JSON string takes at least 2 bytes")
    return "x" * (size - 2)


async def put1(url: str, queue: str, count: int, size: int) -> dict[str, float]:
    async with RedisQueue[str](queue, url=url) as q:
        payload = item(size)
        return await awaited(lambda: q.put(payload), count)


async def fill(url: str, queue: str, count: int, size: int) -> dict[str, float]:
    """``put_many`` in batches; ``waiting`` is the queue's ``qsize()`` after, which should be ``count``."""
    async with RedisQueue[str](queue, url=url) as q:
        payload = item(size)
        start = time.perf_counter()
        for sent in range(0, count, FILL_BATCH):
            await q.put_many([payload] * min(FILL_BATCH, count - sent))
        await q.flush()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "waiting": await q.qsize()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["put1", "fill"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=30, help="bytes of JSON text per item")
    args = parser.parse_args()
    run = put1 if args.what == "put1" else fill
    print(json.dumps(asyncio.run(run(args.url, args.queue, args.count, args.size))), flush=True)


if __name__ == "__main__":
    main()
