"""Issue 9: a consumer cut off from Redis must fence itself: no hand-outs once it cannot prove it owns its items.

Consumer A reaches Redis through ``tests.cut_proxy`` with a large ``--prefetch`` and a slow handler, so it
holds a long local buffer of claimed items; consumer B reaches Redis directly. The proxy's cable is pulled for
4 heartbeat TTLs. Once A's heartbeat has expired, B's sweep gives A's items to B: from then on, anything A
hands out is a duplicate. Fixed behaviour: A stops handing out items once its last successful heartbeat is
older than the TTL, and after the heal re-registers and reconciles (drops what is no longer in its processing
list) before it claims or hands out anything. So every item A starts after its heartbeat expired is one B
never handled; the only duplicates are items A had already started before the cut.

The handler (``tests.rel_handlers:timed``) records (item, pid, start time) straight into Redis, not through
the proxy, so the record is complete whatever the cut does to A's own connections.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.cut_proxy import CutProxy
from tests.fault_support import Proc, claimed, consumer_id, start, state, traceback_free, wait_until

HEARTBEAT = 0.5
TTL = 3 * HEARTBEAT
CUT_FOR = 4 * TTL  # well over the TTL: recovery takes A's items while A still holds them in its buffer
MARGIN = 0.5  # A's last heartbeat before the cut was at most one interval earlier; and clocks of one machine
COUNT = 200
WORK = "0.25"  # seconds per item: A (concurrency 2) starts about 8 items per second from its buffer


def _consumer(queue: str, url: str, record_url: str, logdir: Path, name: str, *args: str) -> Proc:
    return start(
        "consumer",
        ["--queue", queue, "--handler", "tests.rel_handlers:timed", "--heartbeat", str(HEARTBEAT), *args],
        url,
        logdir,
        name,
        FAULT_RECORD_URL=record_url,
        FAULT_RECORD_KEY=queue,
        FAULT_WORK=WORK,
    )


async def _put(url: str, queue: str, n: int) -> list[str]:
    items = [f"item-{i:04d}" for i in range(n)]
    async with RedisQueue(queue, url=url) as q:
        await q.put_many({"data": d} for d in items)
        await q.flush()
    return items


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_cut_off_consumer_stops_handing_out_items_it_no_longer_owns(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    keys = Keys(queue_name)
    upstream_port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    with CutProxy(upstream_port) as proxy:
        via_proxy = f"redis://127.0.0.1:{proxy.port}/0"
        a = _consumer(queue_name, via_proxy, redis_url, tmp_path, "A", "--concurrency", "2", "--prefetch", "150")
        wait_until(lambda: consumer_id(client, keys, a.pid), 20, "A's heartbeat")
        a_id = consumer_id(client, keys, a.pid)
        assert a_id is not None
        items = await _put(redis_url, queue_name, COUNT)
        wait_until(lambda: claimed(client, keys, a_id) >= 100, 20, "A's buffer filled")
        b = _consumer(queue_name, redis_url, redis_url, tmp_path, "B", "--concurrency", "4")
        wait_until(lambda: consumer_id(client, keys, b.pid), 20, "B's heartbeat")

        def diagnostics() -> str:
            return a.describe() + b.describe() + f"\n{state(client, keys)}"

        cut_at = time.time()
        proxy.cut()
        # B can take A's items only once A's heartbeat has expired: wait for that, then for the rest of the cut.
        wait_until(lambda: not client.exists(keys.heartbeat(a_id)), TTL + 5, "A's heartbeat to expire")
        wait_until(lambda: time.time() >= cut_at + CUT_FOR, CUT_FOR + 5, "the end of the cut", interval=0.1)
        healed_at = time.time()
        proxy.heal()

        wait_until(lambda: client.get(keys.unfinished) == b"0", 90, "every item done", interval=0.2)
        assert a.terminate() == 0, diagnostics()
        assert b.terminate() == 0, diagnostics()
        assert traceback_free(a.stderr() + b.stderr()), diagnostics()

    calls = [json.loads(raw) for raw in client.lrange(f"{queue_name}:calls", 0, -1)]
    starts: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for call in calls:
        starts[call["data"]][call["pid"]].append(call["t"])
    done = {k.decode(): int(v) for k, v in client.hgetall(f"{queue_name}:counts").items()}
    assert set(done) == set(items), f"items never processed: {sorted(set(items) - set(done))[:10]}\n{diagnostics()}"

    fenced_from = cut_at + TTL + MARGIN
    by_b = {d for d, per_pid in starts.items() if b.pid in per_pid}
    by_a = {d: per_pid.get(a.pid, []) for d, per_pid in starts.items()}
    during = sorted(d for d, ts in by_a.items() if any(fenced_from < t < healed_at for t in ts))
    after = sorted(d for d, ts in by_a.items() if any(t >= healed_at for t in ts))
    owned = {d for d, ts in by_a.items() if any(t <= fenced_from for t in ts)}  # started while A still owned them
    duplicates = sorted(d for d, per_pid in starts.items() if sum(len(ts) for ts in per_pid.values()) > 1)
    print(
        f"\ncut {CUT_FOR} s (TTL {TTL} s): A started {len(during)} items after its heartbeat expired and before "
        f"the heal ({len(set(during) & by_b)} also handled by B), {len(after)} after the heal "
        f"({len(set(after) & by_b)} also by B); {len(duplicates)} items started twice; totals "
        f"{state(client, keys)['totals']}"
    )
    stale_during = sorted(set(during) & by_b)
    assert not stale_during, (
        f"A handed out {len(stale_during)} item(s) after its heartbeat had expired that B (given them by "
        f"recovery) handled too, e.g. {stale_during[:5]}\n{diagnostics()}"
    )
    stale_after = sorted(set(after) & by_b)
    assert not stale_after, (
        f"after the heal A handed out {len(stale_after)} item(s) recovery had given to B (no reconcile "
        f"first?), e.g. {stale_after[:5]}\n{diagnostics()}"
    )
    assert set(duplicates) <= owned, (
        f"duplicates beyond the items A started before its heartbeat expired: {sorted(set(duplicates) - owned)[:10]}"
    )
