"""The shards of a queue: one key set, client, script set and notification channel each.

A queue of one shard is today's single key set. A queue of N > 1 shards spreads over N hash slots (the layout
is in ``asyncq.core.keys``); on a cluster each shard gets a client of its own slot's master, elsewhere the
shards share one client. The shard count is recorded in Redis on first use (``meta``), so that processes that
disagree on it fail at once rather than leave items where the others never look.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from asyncq.core.cluster import SlotConnectionPool
from asyncq.core.connection import TLSOptions, adopt, connect
from asyncq.core.events import Events
from asyncq.core.failures import is_out_of_memory
from asyncq.core.keys import Keys, shard_keys
from asyncq.core.scripts import Scripts
from asyncq.core.urls import parse_ha


class QueueLayoutError(ValueError):
    """The queue in Redis has another shard count than the one it was opened with."""

    def __init__(self, name: str, recorded: int, opened: int) -> None:
        super().__init__(
            f"queue {name!r} has {recorded} shard(s) in Redis, not {opened}: open it with shards={recorded} "
            f"(--shards {recorded}); to change the count, drain it and delete the key {Keys(name).meta}"
        )
        self.recorded = recorded
        self.opened = opened


@dataclass(frozen=True)
class Shard:
    """One part of a queue; ``index`` is its place (0 for an unsharded queue)."""

    index: int
    keys: Keys
    client: aioredis.Redis
    scripts: Scripts
    events: Events


class Shards:
    """The N shards of queue ``name`` and the clients made for them (closed by ``close``)."""

    def __init__(
        self,
        name: str,
        count: int,
        *,
        url: str,
        redis: Any | None = None,
        tls: TLSOptions | None = None,
    ) -> None:
        keysets = shard_keys(name, count)
        self.name = name
        self.count = count
        self._owned: list[aioredis.Redis] = []
        per_slot = redis is not None or _is_cluster(url)
        shared: aioredis.Redis | None = None
        parts: list[Shard] = []
        for keys in keysets:
            if redis is not None:
                client = adopt(redis, keys.queue)
            elif per_slot or shared is None:
                client = connect(url, key=keys.queue, tls=tls)
                shared = client
            else:
                client = shared
            if client is not redis and client not in self._owned:
                self._owned.append(client)
            scripts = Scripts(client, keys, notify=count > 1)
            parts.append(Shard(keys.index, keys, client, scripts, Events(client, keys.events)))
        self.parts = parts
        self.checked = False
        # The record lives under {NAME} whatever the count: on a cluster that may be a slot of its own.
        self._meta = parts[0].client
        if per_slot and count > 1:
            meta_key = Keys(name).meta
            self._meta = adopt(redis, meta_key) if redis is not None else connect(url, key=meta_key, tls=tls)
            if self._meta is not redis:
                self._owned.append(self._meta)

    @property
    def home(self) -> Shard:
        """Shard 0: it holds the queue's record, the consumers' registry and the recovery lock."""
        return self.parts[0]

    @property
    def sharded(self) -> bool:
        return self.count > 1

    async def check_layout(self, *, record: bool = True) -> None:
        """Record the shard count on first use; raise ``QueueLayoutError`` if Redis holds another one.
        Without ``record``, only check (a CLI, before it does anything)."""
        if self.checked:
            return
        client, key = self._meta, self.home.keys.meta
        recorded = await client.hget(key, "shards")
        if recorded is None and not record:
            return
        if recorded is None:
            try:
                await client.hsetnx(key, "shards", self.count)
            except ResponseError as exc:
                # A full Redis (maxmemory) refuses even this write; no record means one shard, so a queue of
                # one shard goes on (consuming is what frees memory).
                if not (is_out_of_memory(exc) and self.count == 1):
                    raise
            recorded = await client.hget(key, "shards")
        if int(recorded or 1) != self.count:
            raise QueueLayoutError(self.name, int(recorded or 1), self.count)
        self.checked = True

    async def close(self) -> None:
        for part in self.parts:
            await part.events.close()
        for client in self._owned:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


async def recorded_shards(client: aioredis.Redis, name: str) -> int:
    """The shard count Redis holds for queue ``name`` (1 for a queue never opened with shards)."""
    return int(await client.hget(Keys(name).meta, "shards") or 1)


@contextlib.asynccontextmanager
async def shard_clients(client: aioredis.Redis, name: str) -> AsyncIterator[list[tuple[Keys, aioredis.Redis]]]:
    """Every key set of queue ``name`` (as many as Redis records) with a client that reaches it: ``client``
    itself, but on a cluster (``client`` bound to the slot of ``{NAME}``) a client per shard's slot, closed on
    exit. For the operator's tools, which open a queue by name only."""
    count = await recorded_shards(client, name)
    made: list[aioredis.Redis] = []
    parts: list[tuple[Keys, aioredis.Redis]] = []
    for keys in shard_keys(name, count):
        pool = client.connection_pool
        if count > 1 and isinstance(pool, SlotConnectionPool):
            made.append(aioredis.Redis.from_pool(pool.for_slot_of(keys.queue)))
            parts.append((keys, made[-1]))
        else:
            parts.append((keys, client))
    try:
        yield parts
    finally:
        for other in made:
            with contextlib.suppress(RedisError, OSError):
                await other.aclose()


def _is_cluster(url: str) -> bool:
    try:
        ha = parse_ha(url)
    except ValueError:
        return False
    return ha is not None and ha.kind == "cluster"
