"""Reading a queue's state back for the fault tests: counts the handlers kept, dead letters, consumer ids.

The processes themselves are `tests.harness`'s; its names are re-exported here (``Proc``, ``start``, ``run``,
``reap``, ``wait_until``, ``ROOT``) for the files that import them from this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import redis

from asyncq.core.keys import Keys
from tests.harness import ROOT, Proc, reap, run, start, wait_until

__all__ = [
    "ROOT",
    "Proc",
    "assert_drained",
    "calls",
    "consumer_id",
    "counts",
    "dead_letters",
    "reap",
    "run",
    "start",
    "state",
    "traceback_free",
    "wait_until",
]

_CONSUMER_PID = re.compile(r"-(\d+)-[0-9a-f]{6}$")


def consumer_id(client: redis.Redis, keys: Keys, pid: int) -> str | None:
    """The id of the consumer process ``pid`` (from its heartbeat key or its registration), if it registered."""
    members = {m.decode() for m in client.smembers(keys.consumers)}
    for key in client.scan_iter(match=keys.heartbeat_pattern, count=1000):
        members.add(keys.consumer_of(key))
    for member in members:
        match = _CONSUMER_PID.search(member)
        if match and int(match.group(1)) == pid:
            return member
    return None


def counts(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Items the handlers completed, with how many times each (see tests.fault_handlers)."""
    return {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:counts").items()}


def calls(client: redis.Redis, prefix: str, data: str) -> list[float]:
    """Start times of the ``behave`` handler's calls for the item ``data``."""
    return [json.loads(raw)["t"] for raw in client.lrange(f"{prefix}:calls:{data}", 0, -1)]


def dead_letters(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """The queue's dead-letter records, oldest first."""
    return [json.loads(raw) for raw in reversed(client.lrange(keys.dead, 0, -1))]


def claimed(client: redis.Redis, keys: Keys, consumer: str) -> int:
    """How many items consumer ``consumer`` holds: its processing hash and list."""
    return int(client.hlen(keys.held(consumer))) + int(client.llen(keys.processing(consumer)))


def state(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """What is left in Redis for the queue (for assertions and their messages)."""
    owners = {keys.consumer_of(key) for key in client.scan_iter(match=keys.claims_pattern, count=1000)}
    processing = {owner: claimed(client, keys, owner) for owner in owners}
    return {
        "queue": client.llen(keys.queue),
        "delayed": client.zcard(keys.delayed) if client.type(keys.delayed) in (b"zset", b"none") else "wrong type",
        "dead": client.llen(keys.dead),
        "unfinished": int(client.get(keys.unfinished) or 0),
        "processing": processing,
        "heartbeats": [keys.consumer_of(k) for k in client.scan_iter(match=keys.heartbeat_pattern)],
        "totals": {k.decode(): int(v) for k, v in client.hgetall(keys.totals).items()},
    }


def traceback_free(text: str) -> bool:
    return "Traceback" not in text


def assert_drained(
    client: redis.Redis, keys: Keys, consumers: Sequence[Proc], diagnostics: Callable[[], str]
) -> dict[str, Any]:
    """Nothing waiting, nothing unfinished, nothing dead; every consumer then stops with exit 0. Returns the state."""
    left = state(client, keys)
    assert left["unfinished"] == 0, diagnostics()
    assert left["queue"] == 0, diagnostics()
    assert left["dead"] == 0, diagnostics()
    for proc in consumers:
        assert proc.terminate(timeout=30) == 0, diagnostics()
    return left
