"""Inspecting and recovering dead letters: ``asyncq dead-letters list | requeue | purge``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from asyncq.core.envelope import BadEnvelope, DeadLetter, reset_attempts
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts
from asyncq.core.shards import shard_clients


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[str]
    not_found: list[str]
    not_envelopes: list[str]


async def read(client: aioredis.Redis, name: str, limit: int = 0) -> list[DeadLetter | bytes]:
    """Dead letters of every shard, newest first (a value that is not a record is returned as raw bytes)."""
    return [letter for _, letter in await _read_all(client, name, limit)]


async def _read_all(client: aioredis.Redis, name: str, limit: int = 0) -> list[tuple[int, DeadLetter | bytes]]:
    """(shard, dead letter) pairs, newest first over all shards; ``limit`` > 0 keeps that many."""
    found: list[tuple[float, int, DeadLetter | bytes]] = []
    async with shard_clients(client, name) as parts:
        for keys, shard_client in parts:
            for position, letter in enumerate(await _read_shard(shard_client, keys, limit)):
                when = letter.failed_at if isinstance(letter, DeadLetter) else -float(position)
                found.append((when, keys.index, letter))
    found.sort(key=lambda entry: entry[0], reverse=True)
    kept = found[:limit] if limit > 0 else found
    return [(shard, letter) for _, shard, letter in kept]


async def _read_shard(client: aioredis.Redis, keys: Keys, limit: int) -> list[DeadLetter | bytes]:
    raws = await client.lrange(keys.dead, 0, (limit - 1) if limit > 0 else -1)
    letters: list[DeadLetter | bytes] = []
    for raw in raws:
        if not isinstance(raw, bytes):
            continue  # replies are bytes: clients are made with decode_responses off
        try:
            letters.append(DeadLetter.parse(raw))
        except BadEnvelope:
            letters.append(raw)
    return letters


async def requeue(client: aioredis.Redis, name: str, ids: Iterable[str] | None) -> RequeueResult:
    """Put the dead letters with these ids (``None``: all) back at the end of the line, attempts reset."""
    wanted = None if ids is None else set(ids)
    requeued: list[str] = []
    bad: list[str] = []
    async with shard_clients(client, name) as parts:
        notify = len(parts) > 1  # a sharded queue's idle consumers wait for 'ready'
        scripts = [Scripts(shard_client, keys, notify=notify) for keys, shard_client in parts]
        for shard, letter in await _read_all(client, name):
            if not isinstance(letter, DeadLetter) or (wanted is not None and letter.id not in wanted):
                continue
            try:
                envelope = reset_attempts(letter.envelope.encode())
            except BadEnvelope:
                bad.append(letter.id)
                continue
            if await scripts[shard].requeue(letter.raw, envelope):
                requeued.append(letter.id)
    missing = sorted((wanted or set()) - set(requeued) - set(bad))
    return RequeueResult(requeued, missing, bad)


async def purge(client: aioredis.Redis, name: str) -> int:
    """Delete every dead letter of every shard; returns how many there were."""
    total = 0
    async with shard_clients(client, name) as parts:
        for keys, shard_client in parts:
            pipe = shard_client.pipeline(transaction=True)
            pipe.llen(keys.dead)
            pipe.delete(keys.dead)
            count, _ = await pipe.execute()
            total += int(count)
    return total
