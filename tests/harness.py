"""The one test harness: asyncq's CLIs as real processes, and waiting for a condition instead of sleeping.

- ``start(program, args, redis_url, logdir, name)`` starts a console script of this environment with its
  stdout and stderr in files (a pipe nobody reads would block it), on this host or, with ``runner=``, inside a
  `tests.netns` host; it returns a `Proc`.
- ``run(program, args, redis_url)`` runs one to completion (output captured, never raises on a non-zero exit).
- ``wait_until(predicate, timeout, what)`` polls until the condition holds and returns the seconds it took;
  ``async_wait_until`` is the same for a test whose condition needs its own event loop to move.
- ``reap()`` SIGKILLs whatever ``start`` started and a test left running (conftest calls it after each test).

Every process gets the caller's environment less its ASYNCQ_* settings, ``PYTHONUNBUFFERED=1`` (per-item lines
reach the files as they happen, for the waits), ``REDIS_URL`` and ``PYTHONPATH`` holding the repository (so
``--handler tests.fault_handlers:...`` imports), and runs in the repository.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.netns import Host

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ITEM_LINE = re.compile(r"got element <([0-9a-f]+)>")
ADDED_LINE = re.compile(r"added <([0-9a-f]+)>")

_started: list[Proc] = []


def cli(name: str) -> str:
    """Absolute path of a console script of this environment."""
    return str(BIN / name)


def env(**extra: str) -> dict[str, str]:
    """The caller's environment less its ASYNCQ_* settings and REDIS_URL, unbuffered, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCQ_") and k != "REDIS_URL"}
    base["PYTHONUNBUFFERED"] = "1"
    base["PYTHONPATH"] = str(ROOT)
    base.update(extra)
    return base


@dataclass
class Proc:
    """A CLI process writing its stdout and stderr to files; ``host`` is the netns host it runs in, if any."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    host: Host | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def items(self) -> list[str]:
        """The items a consumer run with -v printed ("got element <hex>"), one per delivery, in order."""
        return ITEM_LINE.findall(self.stdout())

    def added(self) -> list[str]:
        """The items a producer run with -v reported as put ("added <hex>"): put() returned for each."""
        return ADDED_LINE.findall(self.stdout())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; the exit code, or TimeoutExpired."""
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def describe(self, tail: int = 3000) -> str:
        """Exit status and the end of both outputs, for assertion messages."""
        where = f"in {self.host.netns} ({self.host.ip})" if self.host is not None else f"pid {self.pid}"
        return (
            f"--- {self.name} ({where}), exit {self.proc.poll()}\nargv: {self.proc.args!r}\n"
            f"stdout (tail):\n{self.stdout()[-tail:]}\nstderr (tail):\n{self.stderr()[-tail:]}\n"
        )


def start(
    program: str,
    args: Sequence[str],
    redis_url: str,
    logdir: Path,
    name: str | None = None,
    *,
    runner: Host | None = None,
    cwd: str | Path = ROOT,
    **extra: str,
) -> Proc:
    """Start console script ``program`` with REDIS_URL=``redis_url`` and ``extra`` in its environment, on this
    host or inside the netns host ``runner``; its output goes to ``logdir/<name>.stdout`` and ``.stderr``."""
    exe = BIN / program
    if not exe.exists():
        raise FileNotFoundError(f"{exe} is missing: run `make install`")
    name = name or (f"{program}-h{runner.index}" if runner is not None else program)
    out, err = logdir / f"{name}.stdout", logdir / f"{name}.stderr"
    argv = [str(exe), *args]
    with out.open("wb") as fout, err.open("wb") as ferr:
        kw: dict[str, Any] = {"env": env(REDIS_URL=redis_url, **extra), "stdout": fout, "stderr": ferr, "cwd": cwd}
        proc = runner.popen(argv, **kw) if runner is not None else subprocess.Popen(argv, **kw)
    started = Proc(name, proc, out, err, runner)
    _started.append(started)
    return started


def run(
    program: str,
    args: Sequence[str],
    redis_url: str,
    timeout: float = 60,
    *,
    runner: Host | None = None,
    cwd: str | Path = ROOT,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run console script ``program`` to completion (text output captured; a non-zero exit does not raise)."""
    argv = [cli(program), *args]
    kw: dict[str, Any] = {"env": env(REDIS_URL=redis_url, **extra), "cwd": cwd, "timeout": timeout}
    if runner is not None:
        return runner.run(argv, **kw)
    return subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, **kw)


def reap() -> None:
    """SIGKILL every process ``start`` started that still runs (a failed test's leftovers)."""
    while _started:
        proc = _started.pop()
        if proc.alive():
            proc.kill()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, AssertionError naming ``what`` after ``timeout``."""
    start_at = time.monotonic()
    while not predicate():
        if time.monotonic() - start_at > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start_at


async def async_wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
    """`wait_until` for async tests: polls without blocking the event loop the condition may depend on;
    ``predicate`` may be a coroutine function (a Redis read, say)."""
    start_at = time.monotonic()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start_at
        if time.monotonic() - start_at > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


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


def build_image(tag: str) -> None:
    """Build the asyncq image as ``tag`` with the classic builder, from ./wheelhouse when it holds wheels
    (scripts/provision-docker.sh makes one where no package index is reachable from a build)."""
    args = ["docker", "build", "--quiet", "--tag", tag]
    if any((ROOT / "wheelhouse").glob("*.whl")):
        args += ["--build-arg", "WHEELHOUSE=wheelhouse"]
    done = subprocess.run(
        [*args, str(ROOT)],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ | {"DOCKER_BUILDKIT": "0"},
        timeout=900,
    )
    assert done.returncode == 0, f"docker build failed (see scripts/provision-docker.sh):\n{done.stderr}"


def commands_per_second(client: Any, window: float) -> float:
    """Commands per second a Redis processed over ``window`` seconds (``total_commands_processed``, which counts
    the commands scripts run too; the two INFO calls taken out)."""
    before = int(client.info("stats")["total_commands_processed"])
    started = time.monotonic()
    time.sleep(window)  # a measurement window, not a wait for a condition
    after = int(client.info("stats")["total_commands_processed"])
    return (after - before - 1) / (time.monotonic() - started)
