"""Processes for the queue vocabulary tests (issue 15): ``python -m tests.vocab_procs ROLE ...``.

- ``consume NAME KIND OUT [PREFETCH [SHARDS]]``: take items until the queue is shut down and empty (``QueueShutDown``),
  writing one JSON line per item to OUT at the handler's start: its payload and Redis's clock (ms); then
  ``{"end": true}``.
- ``put-keys NAME COUNT OUT``: wait for the go signal (a token on the list ``NAME:go``), then put COUNT items
  with the keys k0..k{COUNT-1} all at once, and write ``{"accepted": [keys put]}`` to OUT.

REDIS_URL says where Redis is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from asyncq import QueueShutDown, RedisQueue
from asyncq.core.kinds import queue_class


async def redis_ms(q: RedisQueue[Any]) -> float:
    seconds, micros = await q.redis.time()
    return float(seconds) * 1000 + float(micros) / 1000


async def consume(name: str, kind: str, out: Path, prefetch: int, shards: int) -> None:
    async with queue_class(kind)(name, url=os.environ["REDIS_URL"], prefetch=prefetch, shards=shards) as q:
        with out.open("w") as f:
            while True:
                try:
                    message = await q.get_message()
                except QueueShutDown:
                    break
                at = await redis_ms(q)
                f.write(json.dumps({"payload": message.payload, "at_ms": at, "pid": os.getpid()}) + "\n")
                f.flush()
                q.ack(message)
            await q.flush()
            f.write(json.dumps({"end": True}) + "\n")


async def put_keys(name: str, count: int, out: Path) -> None:
    async with RedisQueue[Any](name, url=os.environ["REDIS_URL"]) as q:
        await q.redis.blpop([f"{name}:go"], timeout=30)
        keys = [f"k{i}" for i in range(count)]
        results = await asyncio.gather(*(q.put({"key": k, "pid": os.getpid()}, key=k) for k in keys))
        out.write_text(json.dumps({"accepted": [k for k, ok in zip(keys, results, strict=True) if ok]}))


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "consume":
        prefetch = int(args[3]) if len(args) > 3 else 0
        shards = int(args[4]) if len(args) > 4 else 1
        asyncio.run(consume(args[0], args[1], Path(args[2]), prefetch, shards))
    elif role == "put-keys":
        asyncio.run(put_keys(args[0], int(args[1]), Path(args[2])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
