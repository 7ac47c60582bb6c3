"""Clients from a URL, one kind per URL form (see ``asyncq.core.urls``), and reachability checks.

Each is a plain ``redis.asyncio.Redis`` whose connection pool knows where to connect: the server of a
``redis://`` URL; the current master of a Sentinel service (redis-py's ``SentinelConnectionPool``); or, for
a Redis Cluster, the master of the queue's hash slot (``asyncq.core.cluster``). So every part of asyncq
uses one interface: pipelines, scripts, a blocking pop, pub/sub. asyncq retries transient failures itself
(``asyncq.core.backoff``), so redis-py's own retry is turned off: a blind retry of a blocking command after
a timeout is the race described in pitfall 1-2 of the design notes.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from asyncq.core.cluster import SlotConnectionPool, SlotResolver, slot_of
from asyncq.core.failures import describe, error_code
from asyncq.core.urls import HAUrl, parse_ha, redact

log = logging.getLogger(__name__)

MIN_REDIS = (7, 0)  # script flags (allow-oom) need 7.0


class RedisUnavailable(Exception):
    """Redis could not be reached or refused us; the message names the URL with the password hidden."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot use Redis at {redact(url)}: {reason}")
        self.url = redact(url)
        self.reason = reason


@dataclass(frozen=True)
class TLSOptions:
    """Certificates for a ``rediss://`` URL."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.ca_file:
            options["ssl_ca_certs"] = self.ca_file
        if self.cert_file:
            options["ssl_certfile"] = self.cert_file
        if self.key_file:
            options["ssl_keyfile"] = self.key_file
        return options


def connect(
    url: str,
    *,
    key: str | None = None,
    socket_timeout: float = 10.0,
    max_connections: int = 20,
    tls: TLSOptions | None = None,
    name: str = "asyncq",
) -> aioredis.Redis:
    """A client for ``url``: bytes replies, bounded timeouts, no hidden retries. On a cluster it serves the
    slot of ``key`` (every key of a queue shares that slot), which a cluster URL therefore needs."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 15,
        "retry": Retry(NoBackoff(), 0),
        "client_name": f"{name}-{socket.gethostname()}-{os.getpid()}",
        **(tls or TLSOptions()).kwargs(),
    }
    try:
        ha = parse_ha(url)
        if ha is None:
            client = aioredis.Redis.from_url(url, max_connections=max_connections, **options)
            pool = client.connection_pool
            pool.connection_class = _REPLACING.get(pool.connection_class, pool.connection_class)
            return client
    except ValueError as exc:
        raise RedisUnavailable(url, f"invalid URL ({exc})") from exc
    auth = {"username": ha.username, "password": ha.password}
    if ha.tls:
        options["ssl"] = True
    if ha.kind == "sentinel":
        return _sentinel_client(ha, options, auth, max_connections)
    if key is None:
        raise RedisUnavailable(url, "a cluster URL needs the queue's name to find its node")
    resolver = SlotResolver(ha.hosts, slot_of(key), {**options, **auth, "client_name": None})
    pool = SlotConnectionPool(resolver, max_connections=max_connections, **options, **auth)
    return aioredis.Redis.from_pool(pool)  # closed with the client


class _DroppedOnDemotion(Connection):
    """A connection to one address that a ``READONLY`` or ``UNBLOCKED`` reply closes: the server became a
    replica (a managed endpoint failing over behind one name), so the next connection resolves the name
    again and finds the new master."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if error_code(exc) in ("READONLY", "UNBLOCKED"):
                await self.disconnect()
            raise


class _DroppedOnDemotionSSL(_DroppedOnDemotion, SSLConnection):
    pass


_REPLACING: dict[type[Any], type[Any]] = {Connection: _DroppedOnDemotion, SSLConnection: _DroppedOnDemotionSSL}


class _SentinelManaged(aioredis.Redis):
    """A client of a Sentinel service's master that also closes its connections to the sentinels."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            for client in self.sentinels.sentinels:
                await client.aclose()


def _sentinel_client(ha: HAUrl, options: dict[str, Any], auth: dict[str, Any], max_connections: int) -> aioredis.Redis:
    sentinel_auth = {"username": ha.query.get("sentinel_username"), "password": ha.query.get("sentinel_password")}
    sentinel_options = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout", "socket_keepalive")}
    sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl")})
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        ha.hosts, sentinel_kwargs={**sentinel_options, **sentinel_auth}, **options, **auth, db=ha.db
    )
    client: _SentinelManaged = sentinel.master_for(
        ha.service, redis_class=_SentinelManaged, max_connections=max_connections
    )
    client.sentinels = sentinel
    return client


def adopt(client: Any, key: str) -> aioredis.Redis:
    """The client to use for a queue whose keys share ``key``'s slot, given the caller's own client: a
    ``redis.asyncio.Redis`` (a Sentinel-managed one too) as it is; for a ``RedisCluster``, a client of the
    slot's master made from its nodes and credentials (the cluster client itself is left to its owner)."""
    if isinstance(client, aioredis.Redis):
        return client
    if isinstance(client, RedisCluster):
        kwargs = dict(client.connection_kwargs)
        nodes = [(node.host, int(node.port)) for node in client.get_nodes()] or [
            (node.host, int(node.port)) for node in client.startup_nodes
        ]
        options = {k: kwargs[k] for k in _CLUSTER_OPTIONS if kwargs.get(k) is not None}
        if kwargs.get("connection_class") is not None and issubclass(kwargs["connection_class"], SSLConnection):
            options["ssl"] = True
        resolver = SlotResolver(nodes, slot_of(key), {**options, "client_name": None})
        return aioredis.Redis.from_pool(SlotConnectionPool(resolver, **options))
    raise TypeError(f"redis= takes a redis.asyncio.Redis or RedisCluster, not {type(client).__name__}")


_CLUSTER_OPTIONS = (
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "client_name",
)


async def rediscover(client: aioredis.Redis) -> None:
    """Drop ``client``'s idle connections so that the next ones find the master again (through the
    sentinels, or the cluster's slot map); on a plain URL they reconnect to the same server."""
    pool = client.connection_pool
    if isinstance(pool, SlotConnectionPool):
        pool.resolver.forget()
    await pool.disconnect(inuse_connections=False)


def blocking_client(client: aioredis.Redis, block_timeout: float) -> aioredis.Redis:
    """A client of one connection of its own to the same place as ``client``, for a blocking pop of
    ``block_timeout`` seconds: its socket timeout stays above the pop's server-side timeout (pitfall 1), and
    it never waits for a connection of the shared pool."""
    pool = client.connection_pool
    timeout = block_timeout + 10.0
    narrowed: aioredis.ConnectionPool
    if isinstance(pool, SlotConnectionPool):
        narrowed = pool.narrowed(max_connections=1, socket_timeout=timeout)
    else:
        options = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"}
        options["socket_timeout"] = timeout
        if isinstance(pool, SentinelConnectionPool):
            narrowed = SentinelConnectionPool(  # type: ignore[no-untyped-call]
                pool.service_name, pool.sentinel_manager, max_connections=1, **options
            )
        else:
            narrowed = aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **options)
    return aioredis.Redis(connection_pool=narrowed, single_connection_client=True)


async def check_reachable(client: aioredis.Redis, url: str) -> None:
    """PING once; raise ``RedisUnavailable`` with a one-line reason when that fails or the server is older
    than 7.0. Also warns when ``maxmemory-policy`` would let Redis evict queue keys.
    """
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(url, describe(exc)) from exc
    try:
        version = str((await client.info("server")).get("redis_version", ""))
    except RedisError:
        version = ""  # INFO may be refused by an ACL; the scripts then say so themselves
    if version and tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < MIN_REDIS:
        raise RedisUnavailable(url, f"Redis {version} is too old: asyncq needs Redis 7.0 or newer")
    try:
        reply: dict[Any, Any] = await client.config_get("maxmemory-policy")
    except RedisError:
        return  # CONFIG may be disabled (managed Redis); nothing to check then
    policy = _text(reply.get("maxmemory-policy", reply.get(b"maxmemory-policy", "")))
    if policy and policy != "noeviction":
        log.warning(
            "Redis maxmemory-policy is %s: under memory pressure Redis may evict queue keys "
            "(items, or heartbeats of live consumers) and lose them; set it to noeviction",
            policy,
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
