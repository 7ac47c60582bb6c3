"""Handlers for the fault tests, loaded by real consumer processes with ``--handler tests.fault_handlers:NAME``.

Each records what it saw in a Redis of the test's choosing, through a plain client of its own, so the test can
count deliveries without parsing output. Settings come from the environment (the consumer passes nothing else):

- ``FAULT_RECORD_URL``: where to record (default: ``REDIS_URL``, the queue's own server);
- ``FAULT_RECORD_KEY``: prefix of the record keys (default ``fault``);
- ``FAULT_WORK``: seconds of simulated work per call, ``SECONDS`` or ``MIN-MAX`` (default 0).

Record keys, for a payload whose ``data`` is ``D`` (the producer's random hex string):

- ``<prefix>:counts`` hash: ``D`` -> how many times a handler completed it (``record``, and ``behave`` on success);
- ``<prefix>:calls:D`` list: one JSON ``{"t": start time, "pid": ...}`` per call of ``behave`` (all modes);
- ``<prefix>:started`` hash: ``D`` -> calls started, by any handler (recorded before the work).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

import redis.asyncio as aioredis

from asyncq import Reject

_client: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    global _client
    if _client is None:
        url = os.environ.get("FAULT_RECORD_URL") or os.environ["REDIS_URL"]
        _client = aioredis.Redis.from_url(url, socket_timeout=10)
    return _client


def _prefix() -> str:
    return os.environ.get("FAULT_RECORD_KEY", "fault")


def _data(item: Any) -> str:
    return str(item["data"]) if isinstance(item, dict) and "data" in item else json.dumps(item, sort_keys=True)


async def _work() -> None:
    spec = os.environ.get("FAULT_WORK", "0")
    low, _, high = spec.partition("-")
    seconds = random.uniform(float(low), float(high or low))
    if seconds > 0:
        await asyncio.sleep(seconds)


async def record(item: Any) -> None:
    """Do ``FAULT_WORK`` seconds of work, then count the item as processed."""
    data = _data(item)
    await _redis().hincrby(f"{_prefix()}:started", data, 1)
    await _work()
    await _redis().hincrby(f"{_prefix()}:counts", data, 1)


async def behave(item: Any) -> None:
    """Log the call, then act on the item's ``mode``: ``fail`` always raises, ``flaky`` raises on the first
    ``fails`` calls (default 2), ``slow`` sleeps ``FAULT_WORK``, ``reject`` raises ``Reject``; success counts it."""
    data = _data(item)
    client = _redis()
    prefix = _prefix()
    calls = await client.rpush(f"{prefix}:calls:{data}", json.dumps({"t": time.time(), "pid": os.getpid()}))
    mode = item.get("mode") if isinstance(item, dict) else None
    if mode == "fail":
        raise RuntimeError(f"always failing on call {calls}")
    if mode == "flaky" and calls <= int(item.get("fails", 2)):
        raise RuntimeError(f"flaky failure on call {calls}")
    if mode == "reject":
        raise Reject("this item can never succeed")
    if mode == "slow":
        await _work()
    await client.hincrby(f"{prefix}:counts", data, 1)
