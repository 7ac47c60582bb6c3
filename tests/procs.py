"""Running asyncq's CLIs as real processes in tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
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


def spawn(name: str, *args: str, redis_url: str, cwd: str | None = None, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [cli(name), *args],
        env=env(REDIS_URL=redis_url, **extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    name: str, *args: str, redis_url: str, timeout: float = 60, cwd: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(name), *args],
        env=env(REDIS_URL=redis_url, **extra),
        cwd=cwd,
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
    """Does a Docker engine answer? (False, reason) when not: engine tests skip with that reason.

    The engine's ``/_ping`` is asked over a socket of our own, closed whatever happens: docker-py's client
    leaks its Unix socket when no engine listens (its connect() raises before anything closes it), and with
    ``filterwarnings = ["error"]`` that ResourceWarning fails whichever test runs next.
    """
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    scheme, _, where = host.partition("://")
    try:
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = where
        elif scheme == "tcp" and not os.environ.get("DOCKER_TLS_VERIFY"):
            name, _, port = where.rstrip("/").rpartition(":")
            sock = socket.socket(socket.AF_INET6 if name.startswith("[") else socket.AF_INET, socket.SOCK_STREAM)
            address = (name.strip("[]"), int(port))
        else:
            return False, f"DOCKER_HOST={host}: only unix:// and plain tcp:// engines are probed"
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return False, f"no Docker engine answers at {host} ({reason}); .ci/run provisions one"
    if not status.startswith(b"HTTP/1.") or status.split(b" ")[1:2] != [b"200"]:
        return False, f"the Docker engine at {host} answers {status.decode(errors='replace')!r} to /_ping"
    return True, ""
