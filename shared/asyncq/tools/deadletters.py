"""Inspecting and recovering dead letters: ``asyncq dead-letters list | requeue | purge``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from asyncq.core.envelope import BadEnvelope, DeadLetter, reset_attempts
from asyncq.core.keys import Keys
from asyncq.core.scripts import Scripts


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[str]
    not_found: list[str]
    not_envelopes: list[str]


async def read(client: aioredis.Redis, name: str, limit: int = 0) -> list[DeadLetter | bytes]:
    """Dead letters, newest first (a value that is not a record is returned as raw bytes)."""
    raws = await client.lrange(Keys(name).dead, 0, (limit - 1) if limit > 0 else -1)
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
    scripts = Scripts(client, Keys(name))
    wanted = None if ids is None else set(ids)
    requeued: list[str] = []
    bad: list[str] = []
    for letter in await read(client, name):
        if not isinstance(letter, DeadLetter) or (wanted is not None and letter.id not in wanted):
            continue
        try:
            envelope = reset_attempts(letter.envelope.encode())
        except BadEnvelope:
            bad.append(letter.id)
            continue
        if await scripts.requeue(letter.raw, envelope):
            requeued.append(letter.id)
    missing = sorted((wanted or set()) - set(requeued) - set(bad))
    return RequeueResult(requeued, missing, bad)


async def purge(client: aioredis.Redis, name: str) -> int:
    """Delete every dead letter; returns how many there were."""
    key = Keys(name).dead
    pipe = client.pipeline(transaction=True)
    pipe.llen(key)
    pipe.delete(key)
    count, _ = await pipe.execute()
    return int(count)
