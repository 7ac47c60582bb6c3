"""Redis Cluster without a cluster client: a connection pool bound to one hash slot.

Every key of a queue shares one hash tag, so a queue lives in one slot, on one master at a time. asyncq
therefore talks to that master over plain connections, which is what its steps need and redis-py's cluster
client does not give: a pipeline of a script and ``WAIT`` on one connection, a blocking pop on a connection
of its own and ``CLIENT UNBLOCK`` on the same node, ``SCAN`` of the slot's node, sharded pub/sub.

``SlotConnectionPool`` makes connections to the slot's current master, found with ``CLUSTER SLOTS`` from any
node it knows. A reply that says the slot is elsewhere (``MOVED``), or that the node is no longer a master
(``READONLY``, ``UNBLOCKED``), or a node that stops answering, drops that connection and makes the pool look
again; the error still reaches the caller, whose loop retries with backoff (these are transient). ``ASK``,
``TRYAGAIN`` and ``CLUSTERDOWN`` (a slot migration or failover under way) are waited out the same way.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError, MovedError, RedisError, ResponseError, TimeoutError

from asyncq.core.failures import error_code

log = logging.getLogger(__name__)

_LOST_MASTER = frozenset(("READONLY", "UNBLOCKED", "CLUSTERDOWN", "MASTERDOWN"))


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


class SlotResolver:
    """Finds, and remembers, the master that serves one hash slot."""

    def __init__(self, nodes: list[tuple[str, int]], slot: int, connect_kwargs: dict[str, Any]) -> None:
        self.nodes = list(dict.fromkeys(nodes))  # startup nodes first, then every node seen
        self.slot = slot
        self.connect_kwargs = connect_kwargs
        self._master: tuple[str, int] | None = None
        self._lock = asyncio.Lock()

    async def master(self) -> tuple[str, int]:
        if self._master is None:
            async with self._lock:
                if self._master is None:
                    self._master = await self._discover()
        return self._master

    def moved(self, host: str, port: int) -> None:
        self._master = (host, port)
        if (host, port) not in self.nodes:
            self.nodes.append((host, port))

    def forget(self) -> None:
        self._master = None

    async def _discover(self) -> tuple[str, int]:
        failures: list[str] = []
        for host, port in list(self.nodes):
            client = aioredis.Redis(host=host, port=port, single_connection_client=True, **self.connect_kwargs)
            try:
                ranges = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                failures.append(f"{host}:{port}: {exc}")
                continue
            finally:
                await client.aclose()
            found = self._read(ranges, host)
            if found is not None:
                return found
            failures.append(f"{host}:{port}: slot {self.slot} not served")
        raise ConnectionError(f"no cluster node serves slot {self.slot} ({'; '.join(failures) or 'no nodes'})")

    def _read(self, ranges: Any, asked: str) -> tuple[str, int] | None:
        """The master of our slot in a CLUSTER SLOTS reply; every node in it becomes known."""
        master = None
        for entry in ranges or []:
            start, end, *members = entry
            for member in members:
                node = (_text(member[0]) or asked, int(member[1]))
                if node not in self.nodes:
                    self.nodes.append(node)
            if int(start) <= self.slot <= int(end) and members:
                master = (_text(members[0][0]) or asked, int(members[0][1]))
        return master


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SlotConnection(Connection):
    """A connection to whichever master serves the pool's slot when it connects."""

    def __init__(self, **kwargs: Any) -> None:
        self.connection_pool = kwargs.pop("connection_pool")
        super().__init__(**kwargs)

    async def connect(self) -> None:
        if self.is_connected:
            return
        resolver: SlotResolver = self.connection_pool.resolver
        self.host, self.port = await resolver.master()
        try:
            await self.connect_check_health(check_health=True, retry_socket_connect=False)
        except (ConnectionError, TimeoutError, OSError):
            resolver.forget()  # the node may be down: ask the others next time
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        resolver: SlotResolver = self.connection_pool.resolver
        try:
            return await super().read_response(*args, **kwargs)
        except MovedError as exc:
            resolver.moved(exc.host, exc.port)
            await self.disconnect()
            raise
        except ResponseError as exc:
            if error_code(exc) in _LOST_MASTER:
                resolver.forget()
                await self.disconnect()
            raise
        except (ConnectionError, TimeoutError, OSError):
            resolver.forget()
            raise


class SlotSSLConnection(SlotConnection, SSLConnection):
    pass


class SlotConnectionPool(ConnectionPool):
    """Connections to the master of ``resolver.slot``, wherever it moves."""

    def __init__(self, resolver: SlotResolver, **kwargs: Any) -> None:
        ssl = kwargs.pop("ssl", False)
        kwargs["connection_class"] = SlotSSLConnection if ssl else SlotConnection
        super().__init__(**kwargs)
        self.resolver = resolver
        self.connection_kwargs["connection_pool"] = weakref.proxy(self)

    def for_slot_of(self, key: str) -> SlotConnectionPool:
        """A pool like this one for the slot of ``key`` (another shard of a queue)."""
        kwargs = {k: v for k, v in self.connection_kwargs.items() if k != "connection_pool"}
        kwargs["ssl"] = issubclass(self.connection_class, SSLConnection)
        resolver = SlotResolver(self.resolver.nodes, slot_of(key), self.resolver.connect_kwargs)
        return SlotConnectionPool(resolver, **kwargs)

    def narrowed(self, **overrides: Any) -> SlotConnectionPool:
        """A pool like this one for the same slot, with some connection options changed."""
        kwargs = {k: v for k, v in self.connection_kwargs.items() if k != "connection_pool"}
        kwargs.update(overrides)
        kwargs["ssl"] = issubclass(self.connection_class, SSLConnection)
        return SlotConnectionPool(self.resolver, **kwargs)
