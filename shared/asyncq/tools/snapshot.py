"""One consistent-enough look at a queue: depth, ages, consumers, retries, dead letters, counters.

Read with SCAN (never KEYS) and pipelines; used by ``asyncq stats``, ``asyncq watch`` and ``asyncq health``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from asyncq.core.envelope import BadEnvelope, decode
from asyncq.core.histogram import Histogram
from asyncq.core.keys import TOTALS, Keys
from asyncq.core.shards import recorded_kind, shard_clients

__all__ = ["TOTALS", "ConsumerView", "Snapshot", "take"]


@dataclass
class ConsumerView:
    """A live consumer as its heartbeat describes it."""

    id: str
    host: str
    pid: int
    concurrency: int
    in_progress: int
    claimed: int
    processed: int
    failed: int
    heartbeat_age: float
    latency: Histogram

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "in_progress": self.in_progress,
            "claimed": self.claimed,
            "processed": self.processed,
            "failed": self.failed,
            "heartbeat_age": round(self.heartbeat_age, 3),
            "latency_ms": {
                "p50": round(self.latency.quantile(0.5) * 1000, 3),
                "p99": round(self.latency.quantile(0.99) * 1000, 3),
            },
        }


@dataclass
class Snapshot:
    queue: str
    taken_at: float
    depth: int
    oldest_age: float | None
    claimed: int
    delayed: int
    dead: int
    unfinished: int
    totals: dict[str, int]
    consumers: list[ConsumerView] = field(default_factory=list)
    orphaned: int = 0
    kind: str = "fifo"
    shutdown: str | None = None  # "drain" or "immediate" once shut down

    @property
    def scheduled(self) -> int:
        """Items waiting for their time: delayed puts and retries (the ``delayed`` zset)."""
        return self.delayed

    @property
    def latency(self) -> Histogram:
        return Histogram.merged(c.latency for c in self.consumers)

    def to_json(self) -> dict[str, Any]:
        latency = self.latency
        return {
            "queue": self.queue,
            "taken_at": self.taken_at,
            "depth": self.depth,
            "oldest_age": self.oldest_age,
            "claimed": self.claimed,
            "in_progress": sum(c.in_progress for c in self.consumers),
            "delayed": self.delayed,
            "scheduled": self.scheduled,
            "kind": self.kind,
            "shutdown": self.shutdown,
            "dead": self.dead,
            "unfinished": self.unfinished,
            "totals": self.totals,
            "orphaned": self.orphaned,
            "latency_ms": {"p50": latency.quantile(0.5) * 1000, "p99": latency.quantile(0.99) * 1000},
            "consumers": [c.to_json() for c in self.consumers],
        }


async def take(client: aioredis.Redis, name: str) -> Snapshot:
    """Read the state of queue ``name``, over all its shards (the consumers from the home shard's heartbeats,
    their claimed items from every shard)."""
    kind = await recorded_kind(client, name)
    async with shard_clients(client, name) as parts:
        now = time.time()
        figures = [await _shard_figures(keys, shard_client, kind) for keys, shard_client in parts]
        lengths: dict[str, int] = {}
        for shard_lengths in (f.lengths for f in figures):
            for cid, n in shard_lengths.items():
                lengths[cid] = lengths.get(cid, 0) + n
        home_keys, home_client = parts[0]
        beats = [key async for key in home_client.scan_iter(match=home_keys.heartbeat_pattern, count=1000)]
        values = await home_client.mget(beats) if beats else []
    consumers = [
        view for raw in values if isinstance(raw, bytes) and (view := _consumer(raw, lengths, now)) is not None
    ]
    live = {c.id for c in consumers}
    ages = [age for f in figures if (age := _age(f.head, now)) is not None]
    return Snapshot(
        queue=name,
        taken_at=now,
        depth=sum(f.depth for f in figures),
        oldest_age=max(ages) if ages else None,
        claimed=sum(lengths.values()),
        delayed=sum(f.delayed for f in figures),
        dead=sum(f.dead for f in figures),
        unfinished=sum(f.unfinished for f in figures),
        totals={k: sum(int(f.totals.get(k.encode(), 0)) for f in figures) for k in TOTALS},
        consumers=sorted(consumers, key=lambda c: (c.host, c.pid)),
        orphaned=sum(n for cid, n in lengths.items() if cid not in live),
        kind=kind,
        shutdown=next((f.shutdown for f in figures if f.shutdown), None),
    )


@dataclass
class _ShardFigures:
    depth: int
    head: bytes | None
    delayed: int
    dead: int
    unfinished: int
    totals: dict[bytes, bytes]
    lengths: dict[str, int]  # consumer id -> items in its processing hash and list here
    shutdown: str | None


async def _shard_figures(keys: Keys, client: aioredis.Redis, kind: str) -> _ShardFigures:
    pipe = client.pipeline(transaction=False)
    if kind == "priority":
        pipe.zcard(keys.ranked)
        pipe.zrange(keys.ranked, 0, 0)
    else:
        pipe.llen(keys.queue)
        pipe.lindex(keys.queue, -1)  # the head; in a LIFO queue the newest, which is next out
    pipe.zcard(keys.delayed)
    pipe.llen(keys.dead)
    pipe.get(keys.unfinished)
    pipe.hgetall(keys.totals)
    pipe.get(keys.shutdown)
    depth, head, delayed, dead, unfinished, totals, shutdown = await pipe.execute()
    if kind == "priority":
        head = head[0][16:] if head else None  # the member's put sequence prefix
    claims = [key async for key in client.scan_iter(match=keys.claims_pattern, count=1000)]
    pipe = client.pipeline(transaction=False)
    for key in claims:
        if key.startswith(keys.prefix.encode() + b"held:"):
            pipe.hlen(key)
        else:
            pipe.llen(key)
    counts = await pipe.execute() if claims else []
    lengths: dict[str, int] = {}
    for key, n in zip(claims, counts, strict=True):
        owner = keys.consumer_of(key)
        lengths[owner] = lengths.get(owner, 0) + int(n)
    mode = shutdown.decode() if isinstance(shutdown, bytes) else None
    return _ShardFigures(int(depth), head, int(delayed), int(dead), int(unfinished or 0), totals, lengths, mode)


def _age(head: bytes | None, now: float) -> float | None:
    if head is None:
        return None
    try:
        return max(0.0, now - decode(head).enqueued_at)
    except BadEnvelope:
        return None


def _consumer(raw: bytes, lengths: dict[str, int], now: float) -> ConsumerView | None:
    try:
        info = json.loads(raw)
        cid = str(info["id"])
        return ConsumerView(
            id=cid,
            host=str(info.get("host", "")),
            pid=int(info.get("pid", 0)),
            concurrency=int(info.get("concurrency", 0)),
            in_progress=int(info.get("in_progress", 0)),
            claimed=lengths.get(cid, 0),
            processed=int(info.get("processed", 0)),
            failed=int(info.get("failed", 0)),
            heartbeat_age=max(0.0, now - float(info.get("at", now))),
            latency=Histogram.from_json(info.get("latency", {})),
        )
    except (ValueError, KeyError, TypeError):
        return None
