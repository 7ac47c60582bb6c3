"""Reliability: consumer processes killed with SIGKILL lose nothing, and live ones keep their items.

Recovery is by liveness: a consumer's items go back to the queue once its heartbeat key expires (3 heartbeat
intervals), never because a job ran long. Deliveries are counted by the handler in ``tests.fault_handlers``.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from asyncq.core.keys import Keys
from tests.fault_support import assert_drained, claimed, consumer_id, counts, state
from tests.harness import Proc, start, wait_until

HANDLER = "tests.fault_handlers:record"
DEFAULT_RECOVERY = 10.0  # the promise with the default heartbeat (2 s): redelivered within 10 s


def _consumer(queue: str, redis_url: str, logdir: Path, name: str, *args: str, work: str = "0") -> Proc:
    return start(
        "consumer",
        ["--queue", queue, "--handler", HANDLER, *args],
        redis_url,
        logdir,
        name,
        FAULT_RECORD_KEY=queue,
        FAULT_WORK=work,
    )


def started(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Items the ``record`` handler began, with how many times each."""
    return {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:started").items()}


def _heartbeats(client: redis.Redis, keys: Keys) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.heartbeat_pattern))


class RecoveryClock:
    """Measures, for each killed consumer, the time from SIGKILL until its processing list is gone
    (the sweep moved its items back to the head of the queue), polling every 20 ms in a thread."""

    def __init__(self, url: str, keys: Keys) -> None:
        self._client = redis.Redis.from_url(url)
        self._keys = keys
        self._pending: dict[str, float] = {}
        self.times: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def killed(self, consumer: str, at: float) -> None:
        with self._lock:
            self._pending[consumer] = at

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = dict(self._pending)
            for consumer, at in pending.items():
                if not self._client.exists(self._keys.processing(consumer), self._keys.held(consumer)):
                    with self._lock:
                        self.times[consumer] = time.monotonic() - at
                        del self._pending[consumer]
            time.sleep(0.02)

    def unresolved(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_sigkill_storm_loses_nothing(client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path) -> None:
    """3 consumers, 20,000 items; a random consumer is SIGKILLed (and restarted) every second for 10 s."""
    count, rate, kills = 20_000, 1500, 10
    keys = Keys(queue_name)
    args = ["--concurrency", "20"]  # default heartbeat (2 s): recovery must meet the default promise
    consumers = [_consumer(queue_name, redis_url, tmp_path, f"consumer-{n}", *args, work="0-0.005") for n in range(3)]
    dead: list[Proc] = []
    wait_until(lambda: _heartbeats(client, keys) == 3, 30, "3 consumer heartbeats")
    producer = start(
        "producer",
        ["--queue", queue_name, "--count", str(count), "--size", "32", "--rate", str(rate), "--wait", "-v"],
        redis_url,
        tmp_path,
        "producer",
    )

    def diagnostics() -> str:
        return "".join(p.describe() for p in [producer, *consumers, *dead]) + f"\n{state(client, keys)}"

    wait_until(lambda: client.hlen(f"{queue_name}:counts") >= 1000, 30, "the first 1000 items processed")
    clock = RecoveryClock(redis_url, keys)
    held: dict[str, int] = {}  # killed consumer id -> items in its processing list after death
    expiry: dict[str, float] = {}  # killed consumer id -> seconds from SIGKILL to its heartbeat's expiry
    try:
        rng = random.Random()
        next_kill = time.monotonic()
        for n in range(kills):
            time.sleep(max(0.0, next_kill - time.monotonic()))  # on purpose: the storm kills once a second
            next_kill += 1.0
            # Prefer a consumer that registered (it may hold items) over one still starting.
            ids = {i: consumer_id(client, keys, c.pid) for i, c in enumerate(consumers)}
            registered = [i for i, cid in ids.items() if cid is not None]
            victim = rng.choice(registered or list(ids))
            proc = consumers[victim]
            proc.kill()
            at = time.monotonic()
            cid = ids[victim] or consumer_id(client, keys, proc.pid)
            if cid is not None:
                held[cid] = claimed(client, keys, cid)  # frozen until the heartbeat expires
                if held[cid]:
                    clock.killed(cid, at)
                    expiry[cid] = max(0, client.pttl(keys.heartbeat(cid))) / 1000 + (time.monotonic() - at)
            dead.append(proc)
            consumers[victim] = _consumer(
                queue_name, redis_url, tmp_path, f"consumer-{victim}-r{n}", *args, work="0-0.005"
            )
        assert producer.alive() or producer.proc.returncode == 0, diagnostics()
        try:
            rc = producer.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("producer --wait did not return within 90 s of the last kill\n" + diagnostics())
        assert rc == 0, diagnostics()
        wait_until(lambda: not clock.unresolved(), DEFAULT_RECOVERY + 5, "every killed consumer's items recovered")
    finally:
        clock.close()

    left = assert_drained(client, keys, consumers, diagnostics)

    put = producer.added()
    seen = counts(client, queue_name)
    assert len(put) == count == len(set(put)), f"the producer reported {len(put)} puts\n{diagnostics()}"
    missing = set(put) - set(seen)
    assert not missing, f"{len(missing)} items were never processed, e.g. {sorted(missing)[:5]}"
    assert set(seen) <= set(put), f"processed items never put: {sorted(set(seen) - set(put))[:5]}"
    duplicates = sum(seen.values()) - len(seen)
    # What the killed consumers held: the items the sweep took back from them. (Their processing lists read
    # just after each SIGKILL can miss one item: a BLMOVE the server served before it saw the socket close.)
    recovered = left["totals"].get("recovered", 0)
    killed_held = sum(held.values())
    assert duplicates <= recovered, f"{duplicates} duplicates, but the killed consumers held only {recovered}"
    lag = sorted(clock.times[c] - expiry[c] for c in clock.times)  # heartbeat expired -> items recovered
    recovery = sorted(clock.times.values())
    assert recovery, "no killed consumer held items: the kills proved nothing"
    assert max(recovery) <= DEFAULT_RECOVERY, f"recovery took {recovery} s"
    print(
        f"\nSIGKILL storm: {count} items, {len(held)} kills, 0 lost, {duplicates} duplicates "
        f"(the sweep took back {recovered} items from killed consumers; their lists held "
        f"{killed_held} right after the kills: {sorted(held.values())}); recovery after SIGKILL "
        f"min {recovery[0]:.2f} s, median {recovery[len(recovery) // 2]:.2f} s, max {recovery[-1]:.2f} s "
        f"over {len(recovery)} kills (after the heartbeat expired: median {lag[len(lag) // 2]:.2f} s, "
        f"max {lag[-1]:.2f} s); totals {left['totals']}"
    )


@pytest.mark.timeout(60)
def test_killed_consumers_long_jobs_go_to_another_within_10s(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    """A consumer in the middle of 30 s jobs is SIGKILLed: a live consumer gets its items within 10 s."""
    keys = Keys(queue_name)
    slow = _consumer(queue_name, redis_url, tmp_path, "slow", "--concurrency", "2", work="30")
    wait_until(lambda: consumer_id(client, keys, slow.pid), 20, "the slow consumer's heartbeat")
    slow_id = consumer_id(client, keys, slow.pid)
    assert slow_id is not None
    producer = start(
        "producer",
        ["--queue", queue_name, "--count", "2", "--size", "32", "--no-wait", "-v"],
        redis_url,
        tmp_path,
        "producer",
    )
    assert producer.wait(timeout=30) == 0, producer.describe()
    wait_until(lambda: claimed(client, keys, slow_id) == 2, 10, "both items claimed by the slow consumer")
    items = producer.added()
    assert len(items) == 2, producer.describe()
    wait_until(lambda: started(client, queue_name) == dict.fromkeys(items, 1), 10, "the slow consumer's 2 jobs begun")
    helper = _consumer(queue_name, redis_url, tmp_path, "helper")
    wait_until(lambda: _heartbeats(client, keys) == 2, 20, "the helper's heartbeat")

    slow.kill()  # both jobs in the handler, with about 28 s to go
    took = wait_until(lambda: len(counts(client, queue_name)) == 2, 20, "the killed consumer's items at the helper")
    assert took <= DEFAULT_RECOVERY, f"redelivered {took:.1f} s after SIGKILL"
    assert counts(client, queue_name) == dict.fromkeys(items, 1)  # completed once each, by the helper
    assert started(client, queue_name) == dict.fromkeys(items, 2)  # begun once by the killed one, once by the helper
    left = state(client, keys)
    assert left["totals"].get("recovered") == 2, left
    wait_until(lambda: client.get(keys.unfinished) == b"0", 10, "unfinished to reach 0")
    assert helper.terminate() == 0, helper.describe()
    print(f"\nitems of a SIGKILLed consumer in 30 s jobs redelivered after {took:.2f} s (default heartbeat 2 s)")


@pytest.mark.timeout(60)
def test_live_consumers_long_job_is_never_taken(
    client: redis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    """A job 4x longer than the heartbeat TTL, with another consumer sweeping all along: no redelivery."""
    keys = Keys(queue_name)
    hb = ["--heartbeat", "0.5"]  # TTL 1.5 s; the job takes 6 s, and the sweeper sweeps every 0.5 s
    worker = _consumer(queue_name, redis_url, tmp_path, "worker", *hb, "--concurrency", "1", work="6")
    wait_until(lambda: _heartbeats(client, keys) == 1, 20, "the worker's heartbeat")
    producer = start(
        "producer",
        ["--queue", queue_name, "--count", "1", "--size", "32", "--no-wait", "-v"],
        redis_url,
        tmp_path,
        "producer",
    )
    assert producer.wait(timeout=30) == 0, producer.describe()
    [item] = producer.added()
    wait_until(lambda: client.hget(f"{queue_name}:started", item) == b"1", 10, "the worker to start the job")
    sweeper = _consumer(queue_name, redis_url, tmp_path, "sweeper", *hb)
    wait_until(lambda: _heartbeats(client, keys) == 2, 20, "the sweeper's heartbeat")

    worker_id, sweeper_id = consumer_id(client, keys, worker.pid), consumer_id(client, keys, sweeper.pid)
    assert worker_id and sweeper_id

    def processed(cid: str) -> int | None:
        beat = client.get(keys.heartbeat(cid))
        return int(json.loads(beat)["processed"]) if beat else None

    # The worker's own heartbeat says it finished the job itself: nobody took it from under it.
    wait_until(lambda: processed(worker_id) == 1, 15, "the worker to report the long job done")
    wait_until(lambda: client.get(keys.unfinished) == b"0", 10, "unfinished to reach 0")
    assert processed(sweeper_id) == 0, "the sweeper ran the item"
    assert counts(client, queue_name) == {item: 1}
    assert client.hgetall(f"{queue_name}:started") == {item.encode(): b"1"}, "the item was delivered twice"
    assert "recovered" not in state(client, keys)["totals"]
    assert worker.terminate() == 0, worker.describe()
    assert sweeper.terminate() == 0, sweeper.describe()
    assert "recovered" not in worker.stderr() + sweeper.stderr()
