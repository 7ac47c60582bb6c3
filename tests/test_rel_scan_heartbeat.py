"""Issue 9, item 7: the periodic SCAN for orphaned processing lists must not stall the heartbeat.

On a Redis holding millions of unrelated keys one full ``SCAN ... MATCH asyncq:{q}:processing:* COUNT 1000``
pass takes longer than the heartbeat's TTL. Before the fix that pass ran inside the heartbeat task, so live
consumers' heartbeats expired, the other consumer's sweep presumed them dead and their long jobs ran twice,
against the README's "a live consumer's long job is never taken from it". After the fix the sweep runs off
the heartbeat's path and each sweep's SCAN work is bounded: every job runs exactly once, nothing is
recovered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import Proc, counts, start, traceback_free, wait_until

UNRELATED_KEYS = 3_000_000  # measured: one SCAN pass over them with redis.asyncio takes 2-3 s here
MORE_KEYS = 1_000_000  # added until a pass outlasts the TTL enough (a faster machine needs more keys)
MAX_KEYS = 12_000_000
HEARTBEAT = 0.5  # TTL 1.5 s
JOBS = 4
JOB_SECONDS = 6.0  # 4 TTLs, and longer than the 10 sweeps (5 s) between two periodic SCANs


@pytest.fixture
def big_server() -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis("--enable-debug-command", "local")
    srv.start()
    yield srv
    srv.cleanup()


async def _scan_pass(url: str, keys: Keys) -> float:
    """Seconds one full SCAN pass for processing lists takes, as the consumer does it."""
    client = aioredis.Redis.from_url(url)
    try:
        started = time.monotonic()
        async for _ in client.scan_iter(match=keys.claims_pattern, count=1000):
            pass
        return time.monotonic() - started
    finally:
        await client.aclose()


def _left(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """The queue's state without tests.fault_support.state's SCANs (minutes over millions of keys)."""
    totals = {k.decode(): int(v) for k, v in client.hgetall(keys.totals).items()}
    return {"queue": client.llen(keys.queue), "unfinished": int(client.get(keys.unfinished) or 0), "totals": totals}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_slow_scan_does_not_expire_live_consumers_heartbeats(big_server: EmbeddedRedis, tmp_path: Path) -> None:
    queue = "q"
    keys = Keys(queue)
    client = redis.Redis.from_url(big_server.url, socket_timeout=60)
    try:
        ttl = 3 * HEARTBEAT
        client.execute_command("DEBUG", "POPULATE", UNRELATED_KEYS, "unrelated")
        total, scan_seconds = UNRELATED_KEYS, asyncio.run(_scan_pass(big_server.url, keys))
        while scan_seconds <= 1.5 * ttl:
            assert total < MAX_KEYS, f"a SCAN pass over {total:,} keys took only {scan_seconds:.2f} s"
            client.execute_command("DEBUG", "POPULATE", MORE_KEYS, f"unrelated-{total}")
            total, scan_seconds = total + MORE_KEYS, asyncio.run(_scan_pass(big_server.url, keys))
        print(f"\n{total:,} unrelated keys: one SCAN pass took {scan_seconds:.2f} s (heartbeat TTL {ttl} s)")

        args = ["--queue", queue, "--handler", "tests.fault_handlers:record", "--heartbeat", str(HEARTBEAT)]
        consumers: list[Proc] = [
            start(
                "consumer",
                [*args, "--concurrency", "2"],
                big_server.url,
                tmp_path,
                f"consumer-{n}",
                FAULT_RECORD_KEY=queue,
                FAULT_WORK=str(JOB_SECONDS),
            )
            for n in range(2)
        ]

        def diagnostics() -> str:
            return "".join(p.describe() for p in consumers) + f"\n{_left(client, keys)}"

        took = wait_until(lambda: client.scard(keys.consumers) == 2, 60, "both consumers registered")
        print(f"consumers registered after {took:.1f} s")
        producer = start(
            "producer",
            ["--queue", queue, "--count", str(JOBS), "--size", "16", "--no-wait", "-v"],
            big_server.url,
            tmp_path,
            "producer",
        )
        assert producer.wait(60) == 0, producer.describe()
        put = producer.added()
        assert len(put) == JOBS, producer.describe()
        took = wait_until(lambda: client.get(keys.unfinished) == b"0", 120, "every job done")
        print(f"every job done {took:.1f} s after the put")
        started = {k.decode(): int(v) for k, v in client.hgetall(f"{queue}:started").items()}
        done = counts(client, queue)
        left = _left(client, keys)
        stopping = time.monotonic()
        for proc in consumers:
            assert proc.terminate() == 0, diagnostics()
        print(f"consumers stopped in {time.monotonic() - stopping:.1f} s")
        for proc in consumers:
            assert traceback_free(proc.stderr()), diagnostics()
    finally:
        client.close()
    twice = sorted(d for d, n in started.items() if n > 1)
    assert not twice, (
        f"{len(twice)} of {JOBS} jobs of live consumers ran more than once (started {started}); recovered "
        f"{left['totals'].get('recovered', 0)}\n{diagnostics()}"
    )
    assert done == dict.fromkeys(put, 1), diagnostics()
    assert left["totals"].get("recovered", 0) == 0, diagnostics()
    assert not any("heartbeat had expired" in p.stderr() for p in consumers), diagnostics()
