"""Issue 9: the idle cost of consumers on Redis must grow linearly with their number, not with its square.

Measured as Redis sees it: ``total_commands_processed`` (INFO stats, which counts the commands scripts run
too) over a window, on a private ``redis-server``, for K and then 4K idle consumer *processes* (the real
``consumer`` CLI: each process has one heartbeat and takes part in the recovery sweep, which is what the cost
is about; objects in one test process would share one event loop and measure the same scripts, but a
process is what an operator scales). Before the fix the sweep lock was released at the end of each sweep, so
every consumer swept every other one each interval: K^2 RECOVER calls per interval.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import Proc, start, wait_until
from tests.harness import commands_per_second

K = 3
HEARTBEAT = "0.5"  # a short interval makes each window cover many sweeps
WINDOW = 6.0  # seconds of measurement: 12 heartbeat intervals
LINEAR = 1.5  # per-consumer cost at 4K may be at most this many times the cost at K


def _heartbeats(client: redis.Redis, keys: Keys) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.heartbeat_pattern, count=1000))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_idle_consumers_cost_redis_linearly(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    queue = "idle"
    keys = Keys(queue)
    client = redis.Redis.from_url(own_redis.url)
    consumers: list[Proc] = []
    rates: dict[int, float] = {}
    try:
        for total in (K, 4 * K):
            while len(consumers) < total:
                n = len(consumers)
                args = ["--queue", queue, "--heartbeat", HEARTBEAT, "--concurrency", "1", "--work", "0"]
                consumers.append(start("consumer", args, own_redis.url, tmp_path, f"consumer-{n}"))
            wait_until(lambda t=total: _heartbeats(client, keys) == t, 60, f"{total} consumer heartbeats")
            # Each consumer sweeps once at start: let one more interval pass, then every one is in its loop.
            wait_until(lambda t=total: client.scard(keys.consumers) == t, 10, f"{total} registered consumers")
            time.sleep(2 * float(HEARTBEAT))
            rates[total] = commands_per_second(client, WINDOW)
        for proc in consumers:
            assert proc.terminate() == 0, proc.describe()
    finally:
        client.close()
    small, large = rates[K] / K, rates[4 * K] / (4 * K)
    print(
        f"\nidle cost, heartbeat {HEARTBEAT} s: {K} consumers {rates[K]:.0f} commands/s ({small:.1f} per consumer), "
        f"{4 * K} consumers {rates[4 * K]:.0f} commands/s ({large:.1f} per consumer): x{large / small:.2f} per consumer"
    )
    assert large <= LINEAR * small, (
        f"idle cost grows faster than the number of consumers: {small:.1f} commands/s per consumer with {K}, "
        f"{large:.1f} with {4 * K} (x{large / small:.2f}, at most x{LINEAR})"
    )
