"""The asyncq CLIs as processes inside `netns` hosts, and what the multi-machine tests read back from them."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.netns import Host, RedisServer
from tests.procs import ADDED_LINE, BIN, ITEM_LINE, env

QUEUE = "asyncq"


def cli_env(redis_url: str) -> dict[str, str]:
    """The caller's environment less its ASYNCQ_* settings, unbuffered (per-item lines reach the files as
    they happen, for the waits), pointed at `redis_url`."""
    return env(REDIS_URL=redis_url)


@dataclass
class CliProcess:
    """A CLI running in a host, its stdout and stderr going to files (a pipe nobody reads would block it)."""

    name: str
    host: Host
    proc: subprocess.Popen[Any]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def items(self) -> list[str]:
        """The items this consumer printed with -v ("got element <hex>"), one per delivery, in order."""
        return ITEM_LINE.findall(self.stdout())

    def added(self) -> list[str]:
        """The items this producer printed with -v ("added <hex>"), in order."""
        return ADDED_LINE.findall(self.stdout())

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code, or raises TimeoutExpired."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def describe(self, tail: int = 4000) -> str:
        """Exit status and the end of both outputs, for assertion messages."""
        return (
            f"--- {self.name} in {self.host.netns} ({self.host.ip}), exit {self.proc.poll()}\n"
            f"argv: {self.proc.args!r}\n"
            f"stdout (tail):\n{self.stdout()[-tail:]}\nstderr (tail):\n{self.stderr()[-tail:]}\n"
        )


def start_cli(
    host: Host,
    program: str,
    args: Sequence[str],
    redis: RedisServer,
    logdir: Path,
    *,
    name: str | None = None,
) -> CliProcess:
    """Start the console script `program` (from this interpreter's bin directory) in `host`, with both
    `--redis-url` and REDIS_URL pointing at `redis`."""
    name = name or f"{program}-h{host.index}"
    exe = BIN / program
    if not exe.exists():
        raise FileNotFoundError(f"{exe} is missing: run `make install`")
    out, err = logdir / f"{name}.stdout", logdir / f"{name}.stderr"
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = host.popen([exe, *args, "--redis-url", redis.url], stdout=fout, stderr=ferr, env=cli_env(redis.url))
    return CliProcess(name, host, proc, out, err)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `predicate` until true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def scan(redis: RedisServer, pattern: str) -> list[str]:
    out = redis.cli("--scan", "--pattern", pattern).stdout
    return [line for line in out.splitlines() if line]


def heartbeats(redis: RedisServer, queue: str = QUEUE) -> list[str]:
    return scan(redis, f"asyncq:{{{queue}}}:heartbeat:*")


def queue_state(redis: RedisServer, queue: str = QUEUE) -> dict[str, Any]:
    """What is left in Redis for `queue` (key layout: shared/keys.py), read with redis-cli inside the host."""
    prefix = f"asyncq:{{{queue}}}:"

    def one(*args: str) -> str:
        return redis.cli(*args).stdout.strip()

    processing = {key: int(one("LLEN", key) or 0) for key in scan(redis, prefix + "processing:*")}
    totals_flat = one("HGETALL", prefix + "totals").splitlines()
    return {
        "queue": int(one("LLEN", prefix + "queue") or 0),
        "delayed": int(one("ZCARD", prefix + "delayed") or 0),
        "dead": int(one("LLEN", prefix + "dead") or 0),
        "unfinished": one("GET", prefix + "unfinished"),
        "processing": processing,
        "totals": dict(zip(totals_flat[::2], totals_flat[1::2], strict=False)),
    }


def duplicates(items: Sequence[str]) -> dict[str, int]:
    """Items seen more than once, with their counts."""
    return {item: n for item, n in Counter(items).items() if n > 1}


def stats_json(host: Host, redis: RedisServer) -> str:
    """`asyncq stats --json` run inside `host` (diagnostics only: its schema is the CLI's business)."""
    try:
        proc = host.run([BIN / "asyncq", "stats", "--json", "--redis-url", redis.url], env=cli_env(redis.url))
    except subprocess.TimeoutExpired:
        return "asyncq stats --json: timed out"
    return f"asyncq stats --json: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
