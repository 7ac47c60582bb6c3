"""Running asyncq's CLIs as real processes in tests."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

BIN = Path(sys.executable).parent
ITEM_LINE = re.compile(r"got element <([0-9a-f]+)>")
ADDED_LINE = re.compile(r"added <([0-9a-f]+)>")


def cli(name: str) -> str:
    """Absolute path of a console script of this environment."""
    return str(BIN / name)


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_") and k != "REDIS_URL"}
    base["PYTHONUNBUFFERED"] = "1"
    base.update(extra)
    return base


def spawn(name: str, *args: str, redis_url: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [cli(name), *args],
        env=env(REDIS_URL=redis_url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(name: str, *args: str, redis_url: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(name), *args],
        env=env(REDIS_URL=redis_url, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """SIGTERM, then collect (exit code, stdout, stderr)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def docker_available() -> tuple[bool, str]:
    """Does a Docker engine answer? (False, reason) when not: engine tests skip with that reason."""
    failure = ""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker raises several unrelated types when no engine is there
        failure = type(exc).__name__
    if not failure:
        return True, ""
    # A client that failed inside from_env() leaves its socket to the collector: collect it now (the
    # exception and its frames are gone), not in whichever later test happens to trigger a collection.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return False, f"no Docker engine answers ({failure}); .ci/run provisions one"
