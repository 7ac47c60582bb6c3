"""A flow of items through a replicated Redis while a fault strikes, counted by id.

A ``producer`` process puts ``count`` items at ``rate`` items/s (``-v``: one "added <hex>" line per item whose
put returned, that is, acknowledged) and then waits in ``join()`` (``--wait``); two ``consumer`` processes run
``tests.rel_handlers:timed``, which records every item it handles, with the time, in a plain redis-server of
the test's own (the record store), outside the system under test. The fault runs once a third of the items
were put. The result says what was lost (acknowledged, never processed), duplicated, still unprocessed when
``join()`` returned, and how long processing paused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import redis

from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import Proc, start, wait_until

HANDLER = "tests.rel_handlers:timed"


@dataclass
class FlowResult:
    added: list[str]
    handled: Counter[str]
    unprocessed_at_join: list[str]
    pause: float
    producer: Proc
    consumers: list[Proc]

    @property
    def lost(self) -> list[str]:
        return [item for item in self.added if item not in self.handled]

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.handled.values() if n > 1)

    def summary(self) -> str:
        return (
            f"acknowledged {len(self.added)}, lost {len(self.lost)}, duplicated {self.duplicated}, "
            f"unprocessed when join() returned {len(self.unprocessed_at_join)}, longest pause {self.pause:.1f} s"
        )

    def describe(self) -> str:
        return self.summary() + "\n" + "".join(p.describe() for p in [self.producer, *self.consumers])


def run_flow(
    url: str,
    queue: str,
    logdir: Path,
    fault: Callable[[], None],
    *,
    count: int = 1500,
    rate: float = 300,
    min_replicas: int = 1,
    work: float = 0.2,
    timeout: float = 120,
    shards: int = 1,
) -> FlowResult:
    """Run the flow through ``url`` with ``fault()`` a third of the way in; returns what it counted.
    ``shards`` > 1 passes ``--shards`` to every process (a queue spread over that many sub-queues)."""
    layout = ["--shards", str(shards)] if shards != 1 else []
    with EmbeddedRedis() as store:
        # Consumers slower than the producer (2 x 20 coroutines x ``work`` s per item): a backlog is waiting
        # when the fault strikes, which is when an acknowledged put can be lost.
        record = {"FAULT_RECORD_URL": store.url, "FAULT_RECORD_KEY": queue, "FAULT_WORK": str(work)}
        consumers = [
            start(
                "consumer",
                ["--queue", queue, "--handler", HANDLER, "--concurrency", "20", "--heartbeat", "1", *layout],
                url,
                logdir,
                f"consumer-{n}",
                **record,
            )
            for n in range(2)
        ]
        producer = start(
            "producer",
            [
                "--queue",
                queue,
                "--count",
                str(count),
                "--rate",
                str(rate),
                "--producers",
                "1",
                "--batch",
                "10",
                "--min-replicas",
                str(min_replicas),
                "--wait",
                "-v",
                *layout,
            ],
            url,
            logdir,
            "producer",
        )
        wait_until(lambda: len(producer.added()) >= count // 3 or not producer.alive(), 60, "a third of the puts")
        fault()
        try:
            assert producer.wait(timeout) == 0, producer.describe()
        finally:
            # What was handled when join() returned (the producer has just exited): read before anything else.
            client = redis.Redis.from_url(store.url)
            handled = Counter({k.decode(): int(v) for k, v in client.hgetall(f"{queue}:counts").items()})
            starts = sorted(json.loads(raw)["t"] for raw in client.lrange(f"{queue}:calls", 0, -1))
            client.close()
        added = producer.added()
        unprocessed = [item for item in added if item not in handled]
        # Anything the consumers still do after join() returned shows as duplicates later, never as "lost".
        for proc in consumers:
            assert proc.terminate(timeout=30) == 0, proc.describe()
        client = redis.Redis.from_url(store.url)
        handled = Counter({k.decode(): int(v) for k, v in client.hgetall(f"{queue}:counts").items()})
        client.close()
    gaps = [b - a for a, b in pairwise(starts)]
    return FlowResult(added, handled, unprocessed, max(gaps, default=0.0), producer, consumers)
