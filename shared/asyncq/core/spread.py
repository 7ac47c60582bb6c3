"""A queue's figures and puts over its shards: puts go round-robin, sizes and ``join()`` add the shards up.

With one shard every call here is the single key set's own; nothing is added to its path.
"""

from __future__ import annotations

import asyncio
import functools
import math
import zlib

from asyncq.core.producing import PutItem, Puts, Replication
from asyncq.core.shards import Shard, Shards


class Spread:
    """The puts of one producer over every shard of a queue.

    ``maxsize`` is shared out: each shard holds at most ``ceil(maxsize / N)`` waiting items, so the queue
    holds at most ``maxsize + N - 1``, and a put may wait for room in its shard while another has some.
    """

    def __init__(self, shards: Shards, *, producer_id: str, maxsize: int, replication: Replication) -> None:
        self._shards = shards
        self.maxsize = maxsize
        share = math.ceil(maxsize / shards.count) if maxsize else 0
        self._puts = [
            Puts(
                client=part.client,
                scripts=part.scripts,
                keys=part.keys,
                producer_id=producer_id,
                maxsize=share,
                events=part.events,
                replication=replication,
            )
            for part in shards.parts
        ]
        self._next = 0

    def submit(self, item: PutItem) -> asyncio.Future[None]:
        if item.key and len(self._puts) > 1:
            # A key always goes to the same shard (a hash of it), so the shard's PUT sees every item put with it.
            return self._puts[zlib.crc32(item.key.encode()) % len(self._puts)].submit(item)
        puts = self._puts[self._next]
        self._next = (self._next + 1) % len(self._puts)
        return puts.submit(item)

    @property
    def known_full(self) -> bool:
        """A shard's last batch found no room (with maxsize): what put_nowait() calls full."""
        return self.maxsize > 0 and any(puts.known_full for puts in self._puts)

    async def flush(self) -> None:
        for puts in self._puts:
            await puts.flush()

    async def close(self, timeout: float) -> None:
        for puts in self._puts:
            await puts.close(timeout)

    async def qsize(self) -> int:
        total = 0
        for puts in self._puts:
            total += await puts.waiting()
        return total

    async def full(self) -> bool:
        if len(self._puts) == 1:
            return await self._puts[0].full()
        return self.maxsize > 0 and await self.qsize() >= self.maxsize

    async def unfinished(self) -> int:
        total = 0
        for part in self._shards.parts:
            total += await _unfinished(part)
        return total

    async def join(self) -> None:
        """Wait until nothing is unfinished on any shard: each in turn, then once more all together (a shard
        seen done may have been given more meanwhile)."""
        parts = self._shards.parts
        if len(parts) == 1:
            await parts[0].events.until_done(self.unfinished)
            return
        while True:
            for part in parts:
                await part.events.until_done(functools.partial(_unfinished, part))
            if await self.unfinished() <= 0:
                return


async def _unfinished(part: Shard) -> int:
    return int(await part.client.get(part.keys.unfinished) or 0)
