"""The Lua side of the envelope, run by a real Redis: ``bump`` and ``item_id`` of lua/lib.lua read both forms
exactly as asyncq.core.envelope writes and decodes them."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from asyncq.core.envelope import decode, encode, reset_attempts
from asyncq.core.scripts import _library

PAYLOADS: list[Any] = [[], {}, None, "text|with|bars", "ünïcode ✓", {"attempts": 7, "x": "~3|"}, ['~1|a|b|||1']]
LEGACY = b'{"attempts":%d,"id":"5f0c1b2a9e3d-00000001","enqueued_at":1732512345.5,"payload":[1,"~0|"]}'


async def _call(redis: aioredis.Redis, function: str, value: bytes) -> Any:
    lib = _library()
    script = lib[function] + f"local out = {function}(ARGV[1])\nif out == nil then return false end\nreturn out\n"
    return await redis.eval(script, 0, value)


@pytest.mark.parametrize("attempts", [0, 1, 9, 99, 12345])
@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
async def test_bump_raises_attempts_by_one_and_leaves_the_rest_identical(
    redis: aioredis.Redis, payload: Any, attempts: int
) -> None:
    raw = encode(payload, attempts=attempts, key="k|1")
    bumped = await _call(redis, "bump", raw)
    assert bumped == f"~{attempts + 1}|".encode() + raw.split(b"|", 1)[1]
    before, after = decode(raw), decode(bumped)
    assert (after.attempts, after.id, after.enqueued_at, after.payload, after.key) == (
        attempts + 1,
        before.id,
        before.enqueued_at,
        before.payload,
        "k|1",
    )
    assert decode(reset_attempts(bumped)).attempts == 0


@pytest.mark.parametrize("attempts", [0, 9])
async def test_bump_raises_an_envelope_of_the_previous_version(redis: aioredis.Redis, attempts: int) -> None:
    bumped = await _call(redis, "bump", LEGACY % attempts)
    assert bumped == LEGACY % (attempts + 1)
    assert decode(bumped).attempts == attempts + 1


async def test_item_id_reads_both_forms_and_nothing_else(redis: aioredis.Redis) -> None:
    raw = encode("p")
    assert await _call(redis, "item_id", raw) == decode(raw).id.encode()
    assert await _call(redis, "item_id", LEGACY % 0) == b"5f0c1b2a9e3d-00000001"
    for garbage in (b"", b"~0||1|||1", b"~0|a b|1|||1", b"not an envelope", b' {"attempts":0,"id":"a"'):
        assert await _call(redis, "item_id", garbage) is None, garbage
