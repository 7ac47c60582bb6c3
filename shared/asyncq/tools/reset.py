"""``asyncq reset NAME``: use a queue's name again after ``shutdown()``, or, with ``--all``, forget the queue.

Reopening deletes only the ``shutdown`` key of every shard: puts are accepted again, and consumers started from
then on consume. (A consumer still running when the queue was shut down and found it empty has ended, as
asyncio's getters do.) ``--all`` deletes every key of the queue on every shard and its record (``meta``), so
it can be opened with another kind or shard count; it refuses while consumers are alive or items are
unfinished, unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from asyncq.core.keys import Keys
from asyncq.core.shards import shard_clients


@dataclass(frozen=True)
class ResetResult:
    was_shut_down: bool
    deleted: int  # keys deleted (--all)


class QueueBusy(RuntimeError):
    """``reset --all`` of a queue with live consumers or unfinished items."""


async def reopen(client: aioredis.Redis, name: str) -> ResetResult:
    """Delete the shutdown key of every shard of queue ``name``."""
    removed = 0
    async with shard_clients(client, name) as parts:
        for keys, shard_client in parts:
            removed += int(await shard_client.delete(keys.shutdown))
    return ResetResult(removed > 0, 0)


async def forget(client: aioredis.Redis, name: str, *, force: bool = False) -> ResetResult:
    """Delete every key of queue ``name`` (all shards, and its record); ``QueueBusy`` unless idle or forced."""
    deleted = 0
    was_shut_down = False
    async with shard_clients(client, name) as parts:
        if not force:
            for keys, shard_client in parts:
                unfinished = int(await shard_client.get(keys.unfinished) or 0)
                alive = [k async for k in shard_client.scan_iter(match=keys.heartbeat_pattern, count=1000)]
                if unfinished > 0 or alive:
                    raise QueueBusy(
                        f"queue {name!r} has {unfinished} unfinished item(s) and {len(alive)} live consumer(s) "
                        f"(shard {keys.index}): stop them, or pass --force"
                    )
        for keys, shard_client in parts:
            was_shut_down |= bool(await shard_client.exists(keys.shutdown))
            found = [k async for k in shard_client.scan_iter(match=keys.prefix + "*", count=1000)]
            for start in range(0, len(found), 500):
                deleted += int(await shard_client.delete(*found[start : start + 500]))
    deleted += int(await client.delete(Keys(name).meta))
    return ResetResult(was_shut_down, deleted)
