"""Several "machines" on one Linux box, for tests: one network namespace per host, joined by a bridge.

Topology (nothing of it in the root namespace, whose interfaces and routes are never touched)::

    <prefix>sw   the switch: bridge br0 with one port p<i> per host
    <prefix>h<i> host i: lo up, eth0 = 10.77.0.<10+i>/24, the veth peer of p<i>

The /24 is configured only inside these namespaces and the hosts have no other route, so traffic between hosts
stays between namespaces that the test created. Never connect to a host's address from the root namespace: it
has no route to the /24 other than its default route, so the packets would leave the machine. Run every client
inside a host, with `Host.popen` / `Host.run` (`RedisServer.cli` does).

Names are ``aqnt-<pid>-<token>-...``: unique per run, so parallel runs never clash. A run killed before its
teardown (SIGKILL, pytest-timeout's thread method) leaves namespaces whose owner pid is dead: the next run
sweeps them away (`sweep_stale`).

Usage::

    ok, reason = netns.available()
    if not ok:
        pytest.skip(reason)
    with netns.Network(3) as net:
        a, b, c = net.hosts
        redis = netns.start_redis(a, tmp_path)
        b.run(["redis-cli", "-h", a.ip, "-p", str(redis.port), "ping"])
        c.link_down()   # a real cut: c's cable is pulled out of the switch
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness import wait_until

FAMILY = "aqnt-"
SUBNET = "10.77.0"  # /24, only ever configured inside the namespaces built here
_FIRST_HOST = 10
_IP_TIMEOUT = 15.0


class NetnsError(RuntimeError):
    """An `ip` command that builds or changes the topology failed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


@functools.cache
def available() -> tuple[bool, str]:
    """Whether this machine can build networks here: (True, "") or (False, the reason to skip with)."""
    if os.geteuid() != 0:
        return False, "netns tests need root (ip netns add)"
    if shutil.which("ip") is None:
        return False, "netns tests need iproute2's `ip`"
    probe = f"{FAMILY}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.SubprocessError) as exc:
        return False, f"`ip netns add` does not work here: {exc}"
    try:
        _ip("-n", probe, "link", "add", "br0", "type", "bridge")
        _ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    except (NetnsError, OSError, subprocess.SubprocessError) as exc:
        return False, f"no bridge or veth inside a network namespace: {exc}"
    finally:
        _ip("netns", "delete", probe, check=False)
    return True, ""


def skip_unless_available() -> None:
    """`pytest.skip` with the reason when network namespaces cannot be built here."""
    import pytest

    ok, reason = available()
    if not ok:
        if os.environ.get("ASYNCQ_REQUIRE_NETNS") == "1":
            pytest.fail(f"ASYNCQ_REQUIRE_NETNS=1 but {reason}")
        pytest.skip(reason)


def namespaces() -> list[str]:
    """The names of every network namespace on this machine (`ip netns list`)."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pids_in(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_delete(ns: str) -> None:
    # Processes keep a namespace (and its veths) alive after `ip netns delete`: kill them first.
    for pid in _pids_in(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _ip("netns", "delete", ns, check=False)


def sweep_stale() -> list[str]:
    """Delete this family's namespaces whose run (the pid in their name) is gone; return their names."""
    stale = []
    for ns in namespaces():
        m = re.match(rf"{re.escape(FAMILY)}(\d+)-", ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            stale.append(ns)
    # Hosts first, then switches: a switch port dies with its host's end of the veth.
    for ns in sorted(stale, key=lambda n: n.endswith("-sw")):
        _kill_and_delete(ns)
    return stale


@dataclass
class Host:
    """One "machine": a network namespace with one address on the shared switch."""

    index: int
    netns: str
    ip: str
    network: Network = field(repr=False)

    @property
    def switch_port(self) -> str:
        return f"p{self.index}"

    def argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """`argv` prefixed to run inside this host (the environment is kept by `ip netns exec`)."""
        return ["ip", "netns", "exec", self.netns, *(os.fspath(a) for a in argv)]

    def popen(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` in this host. `ip netns exec` execs it, so the Popen's pid is the program's own.

        The process gets its own session (signal its group to reach its children); whatever is still running
        when the network closes is killed.
        """
        kw.setdefault("start_new_session", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(argv), **kw)
        self.network.processes.append(proc)
        return proc

    def run(
        self, argv: Sequence[str | os.PathLike[str]], *, timeout: float = 30.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in this host to completion; text output captured unless told otherwise. Never raises on
        a non-zero exit (check `returncode`); raises `subprocess.TimeoutExpired` after `timeout` seconds."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.argv(argv), timeout=timeout, check=False, **kw)

    def link_down(self) -> None:
        """Pull this host's cable out of the switch: eth0 loses carrier, packets are dropped both ways.

        Established TCP connections are not told (no RST, no FIN): they stall and retransmit, as on a cut.
        """
        _ip("-n", self.network.switch, "link", "set", self.switch_port, "down")

    def link_up(self) -> None:
        """Plug the cable back in (the bridge runs no STP: the port forwards at once)."""
        _ip("-n", self.network.switch, "link", "set", self.switch_port, "up")


class Network:
    """K hosts on one switch; a context manager that removes everything it made on exit, even on errors."""

    def __init__(self, hosts: int = 3, *, subnet: str = SUBNET) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError(f"hosts must be within 1..200, not {hosts}")
        self.prefix = f"{FAMILY}{os.getpid()}-{secrets.token_hex(3)}-"
        self.switch = f"{self.prefix}sw"
        self.subnet = subnet
        self.hosts: list[Host] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self._count = hosts
        self._made: list[str] = []

    def __enter__(self) -> Network:
        sweep_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # Quiet and deterministic: no IPv6 autoconfiguration chatter on the bridge.
        for key in ("all", "default"):
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1"],
                capture_output=True,
                timeout=_IP_TIMEOUT,
                check=False,
            )

    def _build(self) -> None:
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(self._count):
            ns = f"{self.prefix}h{i}"
            self._add_ns(ns)
            # Both ends are created directly in their namespaces: nothing appears in the root namespace.
            _ip("-n", self.switch, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
            ip = f"{self.subnet}.{_FIRST_HOST + i}"
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            self.hosts.append(Host(index=i, netns=ns, ip=ip, network=self))

    def close(self) -> None:
        """Kill every process started here, then delete the namespaces (veths and bridge go with them)."""
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self.processes.clear()
        for ns in reversed(self._made):  # hosts, then the switch
            _kill_and_delete(ns)
        self._made.clear()


@dataclass
class RedisServer:
    """A redis-server running inside `host`, listening on host.ip:port only."""

    host: Host
    port: int
    process: subprocess.Popen[Any]
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://{self.host.ip}:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def cli(self, *args: str, frm: Host | None = None, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
        """`redis-cli -h IP -p PORT ARGS...` run inside `frm` (default: the server's own host)."""
        client = frm or self.host
        return client.run(["redis-cli", "-h", self.host.ip, "-p", str(self.port), *args], timeout=timeout)

    def ping(self, frm: Host | None = None, timeout: float = 3.0) -> bool:
        """True when the server answers PONG from `frm` within `timeout` seconds."""
        try:
            return self.cli("ping", frm=frm, timeout=timeout).stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False


def start_redis(host: Host, workdir: Path, *, port: int = 6379, timeout: float = 10.0) -> RedisServer:
    """Start a throwaway redis-server in `host`, bound to host.ip:port, and wait until it answers PING.

    The default port is always free: each host has a port space of its own (the shared server on the root
    namespace's 6379 is another socket, and unreachable from here anyway). No persistence, no protected mode.
    """
    if shutil.which("redis-server") is None:
        raise FileNotFoundError("redis-server is not on PATH")
    rdir = Path(workdir) / f"redis-{host.netns}-{port}"
    rdir.mkdir(parents=True, exist_ok=True)
    log = (rdir / "redis.log").open("wb")
    argv = [
        "redis-server",
        "--bind", host.ip,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "no",
        "--daemonize", "no",
        "--dir", str(rdir),
    ]  # fmt: skip
    with log:
        proc = host.popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=rdir)
    server = RedisServer(host=host, port=port, process=proc, dir=rdir)

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited {proc.returncode}: {server.log.read_text(errors='replace')}")
        return server.ping(timeout=2.0)

    try:
        wait_until(answers, timeout, f"redis-server in {host.netns} to answer PING")
    except AssertionError as exc:
        raise TimeoutError(f"redis-server in {host.netns} did not answer PING within {timeout} s") from exc
    return server
