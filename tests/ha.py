"""Real Redis Cluster and Sentinel deployments for tests: plain ``redis-server`` processes on free loopback ports.

``LocalCluster`` starts N masters with R replicas each (``redis-cli --cluster create``); ``LocalSentinel`` starts one
master, one replica and three sentinels. Both are context managers, need no Docker, and are driven with redis-py's
*sync* client, so they work the same from sync and async tests (from an async test, run a long wait such as
``failover()`` through ``asyncio.to_thread`` if the event loop must keep serving traffic meanwhile).

Every wait polls with a deadline and raises ``HaTimeout`` saying what it waited for; nothing sleeps blindly.
Admin connections use short socket timeouts, so a node that is SIGSTOPped is seen as unreachable, not waited on.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
BUS_OFFSET = 10000  # a cluster node's bus port is its port + 10000
ADMIN_TIMEOUT = 2.0


class HaTimeout(AssertionError):
    """A harness wait ran out of time (an AssertionError, so pytest shows it as a failure, not an error)."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"no {name} on PATH (Debian/Ubuntu: apt-get install redis-server)")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port, as shared/asyncq/tools/embedded.py picks one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_cluster_ports(count: int) -> list[int]:
    """``count`` distinct ports P with P and P + 10000 (the cluster bus) both free, below the ephemeral range."""
    chosen: list[int] = []
    rng = random.Random()
    for _ in range(10_000):
        port = rng.randrange(20_000, 30_000)
        if port in chosen or port + BUS_OFFSET in chosen:
            continue
        if _port_free(port) and _port_free(port + BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"could not find {count} free port pairs (P, P+{BUS_OFFSET})")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); ``HaTimeout`` naming ``what`` after
    ``timeout`` seconds. Redis connection errors inside the predicate count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = predicate()
        except (redis.RedisError, OSError) as exc:
            result, last = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            note = f" (last error: {last!r})" if last else ""
            raise HaTimeout(f"timed out after {timeout:.1f} s waiting for {what}{note}")
        time.sleep(interval)


def _admin(port: int, password: str | None = None, timeout: float = ADMIN_TIMEOUT) -> redis.Redis:
    # No retries: redis-py 8 retries ConnectionError (AuthenticationError included) 3 times with backoff by default,
    # which turns each poll of a dead or stopped node into seconds; the harness's waits poll anyway.
    return redis.Redis(
        retry=Retry(NoBackoff(), 0),
        host=HOST,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )


def _info_text(text: str) -> dict[str, str]:
    """``key:value`` lines (CLUSTER INFO, raw INFO sections) as a dict."""
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def _pairs(row: Any) -> dict[str, str]:
    """A SENTINEL MASTER/REPLICAS entry: a flat [key, value, ...] list, or already a dict (RESP3, some parsers)."""
    if isinstance(row, dict):
        return {str(k): str(v) for k, v in row.items()}
    return {str(k): str(v) for k, v in zip(row[::2], row[1::2], strict=True)}


@dataclass
class _Process:
    """One redis-server process: its arguments, so it can be started again on the same port and directory."""

    port: int
    dir: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False  # SIGSTOPped by the harness

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stopped = False

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited at start: see {self.dir}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-LOADING"))
            return False

        wait_until(answers, timeout, f"redis-server on port {self.port} to answer")

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)  # a stopped process dies on SIGKILL too, but be tidy
                self.process.kill()
        self.process.wait(10)
        self.stopped = False


# --- Cluster ----------------------------------------------------------------------------------------------------


@dataclass
class ClusterNode:
    """A node of a ``LocalCluster``. ``role`` and ``master_id`` are as of the last ``LocalCluster.refresh()``
    (every property and helper of the cluster refreshes them)."""

    port: int
    node_id: str = ""
    role: str = "master"  # "master" or "replica"
    master_id: str | None = None  # for a replica: its master's node id
    slots: list[tuple[int, int]] = field(default_factory=list)
    failed: bool = False  # flagged fail (or pfail) by the cluster
    proc: _Process | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    @property
    def alive(self) -> bool:
        """The process runs and is not SIGSTOPped."""
        return self.proc is not None and self.proc.alive and not self.proc.stopped

    def client(self, timeout: float = ADMIN_TIMEOUT) -> redis.Redis:
        """A plain (non-cluster) sync client on this node, decode_responses=True."""
        return _admin(self.port, timeout=timeout)


class Migration:
    """A ``move_slot`` running in a thread (``LocalCluster.move_slot_in_background``)."""

    def __init__(self, run: Callable[[], int]) -> None:
        self.moved = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(run,), name="slot-migration", daemon=True)
        self._thread.start()

    def _run(self, run: Callable[[], int]) -> None:
        try:
            self.moved = run()
        except BaseException as exc:  # re-raised in wait()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float = 120.0) -> int:
        """Wait for the migration to end; the number of keys moved; re-raises its error."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise HaTimeout(f"slot migration still running after {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.moved


class _Deployment:
    """A context manager of servers: started on enter (closed again if that fails), closed on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LocalCluster(_Deployment):
    """``masters`` masters with ``replicas`` replicas each, as real ``redis-server --cluster-enabled yes`` processes.

    >>> with LocalCluster() as cluster:
    ...     rc = redis.cluster.RedisCluster(startup_nodes=cluster.startup_nodes)
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 3000,
        extra: tuple[str, ...] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self.server = _binary("redis-server")
        self.cli = _binary("redis-cli")
        self.masters_count = masters
        self.replicas_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra = list(extra)
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="asyncq-cluster-"))
        self._nodes: dict[int, ClusterNode] = {}
        self.start_seconds: float | None = None

    # -- life cycle --

    def start(self) -> None:
        started = time.monotonic()
        for port in free_cluster_ports(self.masters_count * (1 + self.replicas_count)):
            node_dir = self.dir / str(port)
            node_dir.mkdir()
            args = [
                self.server,
                "--port", str(port),
                "--bind", HOST,
                "--dir", str(node_dir),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--logfile", str(node_dir / "redis.log"),
                # Redis 7.0 waits 5 s before a diskless full sync, for more replicas to join it: not here.
                "--repl-diskless-sync-delay", "0",
                *self.extra,
            ]  # fmt: skip
            proc = _Process(port, node_dir, args)
            self._nodes[port] = ClusterNode(port, proc=proc)
        for node in self._nodes.values():
            assert node.proc is not None
            node.proc.start()
        command = [self.cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self._nodes)]
        command += ["--cluster-replicas", str(self.replicas_count), "--cluster-yes"]
        create = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}\n{create.stderr}")
        self.wait_ok(self.start_timeout)
        self.start_seconds = time.monotonic() - started

    def close(self) -> None:
        """Kill every process and remove the directories."""
        for node in self._nodes.values():
            if node.proc is not None:
                with contextlib.suppress(Exception):
                    node.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what the cluster looks like --

    @property
    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        """redis-py ``ClusterNode``s of the first ``masters`` ports (the nodes created as masters)."""
        from redis.cluster import ClusterNode as PyClusterNode

        seeds = list(self._nodes)[: self.masters_count]
        return [PyClusterNode(HOST, port) for port in seeds]  # type: ignore[no-untyped-call]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``: the form asyncq takes (one seed per created master)."""
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in list(self._nodes)[: self.masters_count])

    @property
    def nodes(self) -> list[ClusterNode]:
        """Every node (dead ones too), refreshed from a live node's CLUSTER NODES."""
        self.refresh()
        return list(self._nodes.values())

    @property
    def masters(self) -> list[ClusterNode]:
        """Live masters that own slots."""
        return [n for n in self.nodes if n.role == "master" and n.slots and n.alive]

    @property
    def replicas(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.role == "replica"]

    def node(self, port: int) -> ClusterNode:
        return self._nodes[port]

    def _live(self) -> list[ClusterNode]:
        return [n for n in self._nodes.values() if n.alive]

    def _cluster_nodes(self, node: ClusterNode) -> list[dict[str, Any]]:
        with node.client() as c:
            text: str = c.execute_command("CLUSTER", "NODES")  # two words: no redis-py parsing, the raw text
        rows = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 8:
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            flags = parts[2].split(",")
            slots = []
            for item in parts[8:]:
                if item.startswith("["):  # a slot being migrated/imported: [slot->-id] / [slot-<-id]
                    continue
                first, _, last = item.partition("-")
                slots.append((int(first), int(last or first)))
            rows.append(
                {
                    "id": parts[0],
                    "port": port,
                    "flags": flags,
                    "master": None if parts[3] == "-" else parts[3],
                    "slots": slots,
                    "link": parts[7],
                }
            )
        return rows

    def refresh(self) -> None:
        """Update every node's id, role, master and slots from the first live node that answers."""
        for node in self._live():
            try:
                rows = self._cluster_nodes(node)
            except (redis.RedisError, OSError):
                continue
            for row in rows:
                known = self._nodes.get(row["port"])
                if known is None:
                    continue
                known.node_id = row["id"]
                known.role = "master" if "master" in row["flags"] else "replica"
                known.master_id = row["master"]
                known.slots = row["slots"]
                known.failed = "fail" in row["flags"] or "fail?" in row["flags"]
            return

    def by_id(self, node_id: str) -> ClusterNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def keyslot(self, key: str | bytes) -> int:
        from redis.crc import key_slot

        return int(key_slot(key.encode() if isinstance(key, str) else key))

    def owner_of_slot(self, slot: int, via: ClusterNode | None = None) -> ClusterNode:
        """The master owning ``slot``, as ``via`` (default: any live node) sees it in CLUSTER SLOTS."""
        for node in [via] if via else self._live():
            try:
                with node.client() as c:
                    ranges = c.execute_command("CLUSTER", "SLOTS")  # raw: [[start, end, [ip, port, id], ...]]
            except (redis.RedisError, OSError):
                continue
            for start, end, master, *_ in ranges:
                if int(start) <= slot <= int(end):
                    return self._nodes[int(master[1])]
            raise LookupError(f"slot {slot} is not covered")
        raise LookupError("no live node answered CLUSTER SLOTS")

    def master_of(self, key: str | bytes) -> ClusterNode:
        """The node that owns ``key``'s slot (CLUSTER KEYSLOT, then CLUSTER SLOTS)."""
        node = self._live()[0]
        with node.client() as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
        owner = self.owner_of_slot(slot)
        self.refresh()
        return owner

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        """A replica of ``master`` (the first one listed)."""
        self.refresh()
        for node in self._nodes.values():
            if node.role == "replica" and node.master_id == master.node_id:
                return node
        raise LookupError(f"node {master.port} has no replica")

    # -- waits --

    def _node_ok(self, node: ClusterNode) -> bool:
        with node.client() as c:
            info = _info_text(c.execute_command("CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok":
                return False
            replication = c.info("replication")
        if replication["role"] == "slave":
            return bool(replication.get("master_link_status") == "up")
        return True

    def is_ok(self) -> bool:
        """Every live node says cluster_state:ok, every live replica's link is up, and all live nodes have the same
        view of the cluster (roles, masters, slots, failed nodes)."""
        live = self._live()
        if not live or not all(self._node_ok(n) for n in live):
            return False
        views = set()
        for node in live:
            rows = self._cluster_nodes(node)
            if any("handshake" in r["flags"] or "noaddr" in r["flags"] for r in rows):
                return False
            # Who is master of whom, who owns which slots, who is failed: the same on every live node.
            views.add(
                tuple(
                    sorted(
                        (r["port"], "master" in r["flags"], r["master"], tuple(r["slots"]), "fail" in r["flags"])
                        for r in rows
                    )
                )
            )
        return len(views) == 1

    def wait_ok(self, timeout: float = 30.0) -> None:
        wait_until(self.is_ok, timeout, "cluster_state:ok on every node, replicas linked, one view of the slots")
        self.refresh()

    # -- faults --

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node`` (and reap it)."""
        self.refresh()
        assert node.proc is not None
        node.proc.kill()

    def stop(self, node: ClusterNode) -> None:
        """SIGSTOP ``node``: it keeps its sockets but answers nothing."""
        self.refresh()
        assert node.proc is not None
        node.proc.signal(signal.SIGSTOP)
        node.proc.stopped = True

    def cont(self, node: ClusterNode) -> None:
        """SIGCONT a node ``stop`` stopped."""
        assert node.proc is not None
        node.proc.signal(signal.SIGCONT)
        node.proc.stopped = False

    def restart(self, node: ClusterNode, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Kill ``node`` if it runs, start it again on the same port and directory (its nodes.conf keeps its
        identity), and wait (``wait=True``) until the cluster is ok with it in."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.start()
        if wait:
            wait_until(lambda: self._node_ok(node) and self.is_ok(), timeout, f"node {node.port} back in the cluster")
            self.refresh()

    def failover(self, replica: ClusterNode, *, timeout: float = 30.0, mode: str | None = None) -> ClusterNode:
        """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` on ``replica``; waits until it reports role master and the cluster is
        ok. Returns it (now a master)."""
        args = ["CLUSTER", "FAILOVER", *([mode] if mode else [])]
        with replica.client() as c:
            c.execute_command(*args)

        def promoted() -> bool:
            with replica.client() as c:
                return bool(c.info("replication")["role"] == "master")

        wait_until(promoted, timeout, f"node {replica.port} to report role:master after CLUSTER FAILOVER")
        self.wait_ok(timeout)
        return replica

    def wait_failover_after_kill(self, master: ClusterNode, timeout: float = 60.0) -> ClusterNode:
        """After ``master`` was killed (or stopped): wait until one of its replicas is master and cluster_state is ok
        on every live node; returns the new master."""
        candidates = [n for n in self._nodes.values() if n.master_id == master.node_id and n.role == "replica"]
        if not candidates:
            raise LookupError(f"node {master.port} had no replica to take over")

        def promoted() -> ClusterNode | None:
            for node in candidates:
                if not node.alive:
                    continue
                with node.client() as c:
                    if c.info("replication")["role"] == "master":
                        return node
            return None

        new: ClusterNode = wait_until(promoted, timeout, f"a replica of node {master.port} to become master")
        self.wait_ok(timeout)
        return new

    # -- resharding --

    def move_slot(
        self,
        slot: int,
        to_master: ClusterNode,
        *,
        batch: int = 100,
        on_batch: Callable[[list[str]], None] | None = None,
        timeout_ms: int = 5000,
    ) -> int:
        """Migrate ``slot`` to ``to_master`` the way ``redis-cli --cluster reshard`` does: SETSLOT IMPORTING on the
        target, MIGRATING on the source, MIGRATE its keys ``batch`` at a time (``on_batch(keys)`` after each batch:
        a test can run traffic or pause there), then SETSLOT NODE on the target, the source and every other master.
        Returns the number of keys moved."""
        source = self.owner_of_slot(slot)
        self.refresh()
        if source.port == to_master.port:
            return 0
        target = to_master
        with target.client() as t, source.client() as s:
            t.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            moved = 0
            while keys := s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                s.execute_command("MIGRATE", HOST, target.port, "", 0, timeout_ms, "KEYS", *keys)
                moved += len(keys)
                if on_batch is not None:
                    on_batch(list(keys))
            t.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            s.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for other in self.masters:
            if other.port not in (source.port, target.port):
                with other.client() as o:
                    o.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        self.wait_ok()
        return moved

    def move_slot_slowly(
        self,
        slot: int,
        to_master: ClusterNode,
        *,
        pause: float = 0.01,
        on_key: Callable[[str], None] | None = None,
    ) -> int:
        """``move_slot`` one key at a time, ``pause`` seconds after each (and ``on_key(key)``): traffic sent meanwhile
        meets a slot half here, half there (ASK redirections, TRYAGAIN for multi-key commands)."""

        def each(keys: list[str]) -> None:
            for key in keys:
                if on_key is not None:
                    on_key(key)
            time.sleep(pause)

        return self.move_slot(slot, to_master, batch=1, on_batch=each)

    def move_slot_in_background(
        self,
        slot: int,
        to_master: ClusterNode,
        *,
        pause: float = 0.01,
        on_key: Callable[[str], None] | None = None,
    ) -> Migration:
        """``move_slot_slowly`` in a thread; ``Migration.wait()`` for its end (and its error, if any)."""
        return Migration(lambda: self.move_slot_slowly(slot, to_master, pause=pause, on_key=on_key))


# --- Sentinel ---------------------------------------------------------------------------------------------------


class Paused:
    """A process SIGSTOPped now and SIGCONTed after ``seconds`` by a timer thread (``LocalSentinel.stop_master``)."""

    def __init__(self, proc: _Process, seconds: float) -> None:
        self.proc = proc
        proc.signal(signal.SIGSTOP)
        proc.stopped = True
        self.stopped_at = time.monotonic()
        self._resumed = threading.Event()
        self._timer = threading.Timer(seconds, self.resume)
        self._timer.daemon = True
        self._timer.start()

    def resume(self) -> None:
        """SIGCONT now (idempotent)."""
        if not self._resumed.is_set():
            self._timer.cancel()
            self.proc.signal(signal.SIGCONT)
            self.proc.stopped = False
            self._resumed.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process is resumed."""
        return self._resumed.wait(timeout)


class LocalSentinel(_Deployment):
    """One master, one replica (``--replicaof``) and three sentinels monitoring them as ``service``.

    ``password`` sets requirepass + masterauth on the data nodes and ``sentinel auth-pass`` in the sentinels;
    ``sentinel_password`` sets requirepass on the sentinels themselves (they use it with each other too).
    """

    def __init__(
        self,
        service: str = "mymaster",
        *,
        password: str | None = None,
        sentinel_password: str | None = None,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 10000,
        extra: tuple[str, ...] = (),
        start_timeout: float = 30.0,
    ) -> None:
        self.server = _binary("redis-server")
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.sentinels_count = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.extra = list(extra)
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="asyncq-sentinel-"))
        self.data: dict[int, _Process] = {}  # port -> master or replica
        self.sentinels: dict[int, _Process] = {}
        self.start_seconds: float | None = None

    # -- life cycle --

    def _data_args(self, port: int, node_dir: Path, replicaof: int | None) -> list[str]:
        args = [
            self.server,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(node_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(node_dir / "redis.log"),
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if replicaof is not None:
            args += ["--replicaof", HOST, str(replicaof)]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args + self.extra

    def _sentinel_conf(self, port: int, master_port: int, node_dir: Path) -> Path:
        name = self.service
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f"dir {node_dir}",
            f"logfile {node_dir / 'sentinel.log'}",
            "sentinel resolve-hostnames no",
            f"sentinel monitor {name} {HOST} {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {name} {self.password}")
        if self.sentinel_password:
            lines.append(f"requirepass {self.sentinel_password}")
        conf = node_dir / "sentinel.conf"  # sentinels rewrite their config file: one writable file each
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        started = time.monotonic()
        master_port, replica_port = free_port(), free_port()
        while replica_port == master_port:
            replica_port = free_port()
        for port, replicaof in ((master_port, None), (replica_port, master_port)):
            node_dir = self.dir / f"data-{port}"
            node_dir.mkdir()
            self.data[port] = _Process(port, node_dir, self._data_args(port, node_dir, replicaof))
            self.data[port].start()
        for _ in range(self.sentinels_count):
            port = free_port()
            while port in self.data or port in self.sentinels:
                port = free_port()
            node_dir = self.dir / f"sentinel-{port}"
            node_dir.mkdir()
            conf = self._sentinel_conf(port, master_port, node_dir)
            self.sentinels[port] = _Process(port, node_dir, [self.server, str(conf), "--sentinel"])
            self.sentinels[port].start()
        self.wait_ready(self.start_timeout)
        self.start_seconds = time.monotonic() - started

    def close(self) -> None:
        for proc in [*self.sentinels.values(), *self.data.values()]:
            with contextlib.suppress(Exception):
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- addresses --

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.sentinels]

    @property
    def url(self) -> str:
        """``redis+sentinel://[:PASSWORD@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/SERVICE``: the password is the data
        nodes' (the sentinels' own password, if any, is ``sentinel_password`` and not in the URL)."""
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.service}"

    def sentinel_client(self, port: int) -> redis.Redis:
        return _admin(port, self.sentinel_password)

    def data_client(self, port: int) -> redis.Redis:
        return _admin(port, self.password)

    def py_sentinel(self, **kwargs: Any) -> redis.sentinel.Sentinel:
        """redis-py's sync ``Sentinel`` on the three sentinels, with the passwords set."""
        from redis.sentinel import Sentinel

        sentinel_kwargs = {"password": self.sentinel_password} if self.sentinel_password else None
        return Sentinel(  # type: ignore[no-untyped-call]
            self.sentinel_addresses,
            sentinel_kwargs=sentinel_kwargs,
            password=self.password,
            socket_timeout=ADMIN_TIMEOUT,
            **kwargs,
        )

    def master_for(self, **kwargs: Any) -> redis.Redis:
        """redis-py's ``Sentinel.master_for(service)``: a client that follows the master through failovers."""
        client: redis.Redis = self.py_sentinel().master_for(self.service, **kwargs)  # type: ignore[no-untyped-call]
        return client

    def _live_sentinels(self) -> list[int]:
        return [p for p, proc in self.sentinels.items() if proc.alive and not proc.stopped]

    def master(self) -> tuple[str, int]:
        """The current master's address, as the first sentinel that answers says."""
        for port in self._live_sentinels():
            try:
                with self.sentinel_client(port) as s:
                    host, master_port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                    return str(host), int(master_port)
            except (redis.RedisError, OSError):
                continue
        raise LookupError("no sentinel answered")

    def replica(self) -> tuple[str, int]:
        """A replica the sentinels consider healthy (not down, not disconnected)."""
        for port in self._live_sentinels():
            try:
                with self.sentinel_client(port) as s:
                    rows = s.execute_command("SENTINEL", "REPLICAS", self.service)
            except (redis.RedisError, OSError):
                continue
            for row in rows:
                info = _pairs(row)
                flags = info["flags"].split(",")
                if not {"s_down", "o_down", "disconnected"} & set(flags):
                    return str(info["ip"]), int(info["port"])
            raise LookupError("the sentinels know no healthy replica")
        raise LookupError("no sentinel answered")

    def _sentinel_master(self, port: int) -> dict[str, str]:
        with self.sentinel_client(port) as s:
            row = s.execute_command("SENTINEL", "MASTER", self.service)  # raw: flat [key, value, ...]
        return _pairs(row)

    def _role(self, port: int) -> dict[str, Any]:
        with self.data_client(port) as c:
            return dict(c.info("replication"))

    # -- waits --

    def is_ready(self) -> bool:
        """Every live sentinel agrees on the master, sees the other sentinels and a replica; the master says
        role:master; every replica's link is up."""
        live = self._live_sentinels()
        masters = set()
        for port in live:
            info = self._sentinel_master(port)
            if int(info["num-other-sentinels"]) < len(self.sentinels) - 1 or int(info["num-slaves"]) < 1:
                return False
            if {"s_down", "o_down", "failover_in_progress"} & set(info["flags"].split(",")):
                return False
            masters.add(int(info["port"]))
        if len(masters) != 1:
            return False
        (master_port,) = masters
        if self._role(master_port)["role"] != "master":
            return False
        for port, proc in self.data.items():
            if port != master_port and proc.alive and not proc.stopped:
                role = self._role(port)
                if role["role"] != "slave" or role.get("master_link_status") != "up":
                    return False
                if int(role["master_port"]) != master_port:
                    return False
        return True

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_until(self.is_ready, timeout, "the sentinels to agree on a master with a linked replica", 0.1)

    def wait_new_master(self, old: tuple[str, int], timeout: float = 60.0) -> tuple[str, int]:
        """Wait until every live sentinel names a master other than ``old`` and that node says role:master."""

        def moved() -> tuple[str, int] | None:
            seen = set()
            for port in self._live_sentinels():
                with self.sentinel_client(port) as s:
                    host, master_port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                seen.add((str(host), int(master_port)))
            if len(seen) != 1:
                return None
            (new,) = seen
            if new == old or self._role(new[1])["role"] != "master":
                return None
            return new

        found: tuple[str, int] = wait_until(moved, timeout, f"a master other than {old[0]}:{old[1]}", 0.1)
        return found

    def wait_demoted(self, old: tuple[str, int], timeout: float = 60.0) -> None:
        """Wait until ``old`` (a former master, running again) is a replica of the current master, link up, and every
        live sentinel lists it as a healthy replica."""

        def demoted() -> bool:
            role = self._role(old[1])
            current = self.master()
            if not (
                role["role"] == "slave"
                and role.get("master_link_status") == "up"
                and int(role["master_port"]) == current[1]
            ):
                return False
            for port in self._live_sentinels():
                with self.sentinel_client(port) as s:
                    rows = [_pairs(r) for r in s.execute_command("SENTINEL", "REPLICAS", self.service)]
                healthy = {
                    int(r["port"])
                    for r in rows
                    if not {"s_down", "o_down", "disconnected"} & set(r["flags"].split(","))
                }
                if old[1] not in healthy:
                    return False
            return True

        wait_until(demoted, timeout, f"{old[0]}:{old[1]} to become a linked replica", 0.1)

    # -- faults --

    def failover(self, timeout: float = 60.0) -> tuple[str, int]:
        """``SENTINEL FAILOVER``; waits until the sentinels name the other node and it says role:master. Returns the
        new master's address (the old one is demoted by the sentinels shortly after: ``wait_demoted``)."""
        old = self.master()
        port = self._live_sentinels()[0]

        def asked() -> bool:
            # INPROG or NOGOODSLAVE right after a previous failover: the sentinels are still settling.
            with self.sentinel_client(port) as s:
                s.execute_command("SENTINEL", "FAILOVER", self.service)
            return True

        wait_until(asked, timeout, "SENTINEL FAILOVER to be accepted", 0.2)
        return self.wait_new_master(old, timeout)

    def _master_proc(self) -> _Process:
        return self.data[self.master()[1]]

    def kill_master(self) -> tuple[str, int]:
        """SIGKILL the current master; returns its address (for ``wait_new_master``)."""
        old = self.master()
        self.data[old[1]].kill()
        return old

    def stop_master(self, seconds: float) -> Paused:
        """SIGSTOP the current master now and SIGCONT it after ``seconds`` (in a timer thread). ``Paused.proc.port``
        is the old master's port."""
        return Paused(self._master_proc(), seconds)

    def restart(self, address: tuple[str, int]) -> None:
        """Start a data node that was killed again, on its port and directory (with its original arguments: the
        sentinels reconfigure it as a replica once it answers)."""
        proc = self.data[address[1]]
        proc.kill()
        proc.start()


def available() -> bool:
    """redis-server and redis-cli on PATH?"""
    return bool(shutil.which("redis-server") and shutil.which("redis-cli"))
