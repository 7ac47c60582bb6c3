"""What the multi-machine tests read back from Redis inside `netns` hosts (redis-cli in the host).

The processes are `tests.harness`'s (``start(..., runner=host)``); ``CliProcess``, ``start_cli`` and
``wait_until`` stay here as thin aliases for the files that import them from this module.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.harness import BIN, Proc, env, start, wait_until
from tests.netns import Host, RedisServer

__all__ = ["CliProcess", "duplicates", "heartbeats", "queue_state", "scan", "start_cli", "stats_json", "wait_until"]

QUEUE = "asyncq"
CliProcess = Proc


def cli_env(redis_url: str) -> dict[str, str]:
    return env(REDIS_URL=redis_url)


def start_cli(
    host: Host, program: str, args: Sequence[str], redis: RedisServer, logdir: Path, *, name: str | None = None
) -> Proc:
    """`tests.harness.start` in `host`, with both ``--redis-url`` and REDIS_URL pointing at `redis`."""
    return start(program, [*args, "--redis-url", redis.url], redis.url, logdir, name, runner=host)


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
