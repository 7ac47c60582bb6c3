"""What the fault tests share: CLI processes with their output in files, and reading a queue's state back.

The processes are the venv's real ``producer`` / ``consumer`` console scripts. Their output goes to files
(a pipe nobody reads would block them); ``PYTHONPATH`` holds the repository so ``--handler
tests.fault_handlers:...`` imports.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from asyncq.core.keys import Keys
from tests.procs import ADDED_LINE, cli, env

ROOT = Path(__file__).resolve().parent.parent
_CONSUMER_PID = re.compile(r"-(\d+)-[0-9a-f]{6}$")
_started: list[Proc] = []


@dataclass
class Proc:
    """A CLI process writing its stdout and stderr to files."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def added(self) -> list[str]:
        """The items a producer run with -v reported as put ("added <hex>"): put() returned for each."""
        return ADDED_LINE.findall(self.stdout())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; the exit code, or TimeoutExpired."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def describe(self, tail: int = 3000) -> str:
        return (
            f"--- {self.name} (pid {self.pid}), exit {self.proc.poll()}\nargv: {self.proc.args!r}\n"
            f"stdout (tail):\n{self.stdout()[-tail:]}\nstderr (tail):\n{self.stderr()[-tail:]}\n"
        )


def start(program: str, args: Sequence[str], redis_url: str, logdir: Path, name: str, **extra: str) -> Proc:
    """Start console script ``program`` with REDIS_URL=``redis_url`` and ``extra`` in its environment."""
    out, err = logdir / f"{name}.stdout", logdir / f"{name}.stderr"
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            [cli(program), *args],
            env=env(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), **extra),
            stdout=fout,
            stderr=ferr,
            cwd=ROOT,
        )
    started = Proc(name, proc, out, err)
    _started.append(started)
    return started


def reap() -> None:
    """SIGKILL every process ``start`` started that still runs (a failed test's leftovers)."""
    while _started:
        proc = _started.pop()
        if proc.alive():
            proc.kill()


def run(
    program: str, args: Sequence[str], redis_url: str, timeout: float = 60, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(program), *args],
        env=env(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, AssertionError naming ``what`` after ``timeout``."""
    start_at = time.monotonic()
    while not predicate():
        if time.monotonic() - start_at > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start_at


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


def state(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """What is left in Redis for the queue (for assertions and their messages)."""
    processing = {
        keys.consumer_of(key): client.llen(key) for key in client.scan_iter(match=keys.processing_pattern, count=1000)
    }
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
