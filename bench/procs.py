"""Processes under measurement: CPU seconds and peak RSS of each, read from the kernel (no psutil needed).

A finished child is reaped with ``os.wait4``, whose rusage is that one process's own (not summed over all
children); a running one is sampled from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from resource import struct_rusage

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """What one process used over its life."""

    cpu: float  # seconds, user + system
    rss_mb: float  # peak resident set size


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat(5)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a running process now (``VmHWM``: its peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """A child process whose output goes to files in ``workdir`` (no pipe to fill up and stall it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid
        self.usage: Usage | None = None

    @property
    def running(self) -> bool:
        return self.usage is None

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    def cpu_now(self) -> float:
        return cpu_seconds(self.pid)

    def rss_now(self) -> float:
        return rss_mb(self.pid)

    def wait(self, timeout: float) -> Usage:
        """Reap the process (killing it after ``timeout`` seconds); raises if it failed."""
        if self.usage is not None:
            return self.usage
        deadline = time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.popen.kill()
                pid, status, rusage = os.wait4(self.pid, 0)
                self._reaped(status, rusage)
                raise RuntimeError(f"{self.name} did not finish within {timeout:.0f} s; stderr:\n{self.errors()}")
            time.sleep(0.01)
        self._reaped(status, rusage)
        code = self.popen.returncode
        if code != 0:
            raise RuntimeError(f"{self.name} exited with {code}; stderr:\n{self.errors()}")
        assert self.usage is not None
        return self.usage

    def stop(self, timeout: float = 30.0) -> Usage:
        """SIGTERM (a graceful stop for the CLIs), then reap."""
        if self.usage is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Best effort, for cleaning up after a failed case."""
        if self.usage is None:
            self.popen.kill()
            _, status, rusage = os.wait4(self.pid, 0)
            self._reaped(status, rusage)

    def _reaped(self, status: int, rusage: struct_rusage) -> None:
        # ru_maxrss is in kilobytes on Linux
        self.usage = Usage(cpu=rusage.ru_utime + rusage.ru_stime, rss_mb=rusage.ru_maxrss / 1024)
        self.popen.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> None:
    """Poll ``condition()`` until true; ``RuntimeError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
