"""Connecting to Redis: clients from a URL, URL redaction, reachability checks, and the errors that mean "wait".

asyncq retries transient failures itself (``shared.backoff``), so redis-py's own retry is turned off: a
blind retry of a blocking command after a timeout is the race described in pitfall 1-2 of the design notes.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ConnectionError,
    RedisError,
    ResponseError,
    TimeoutError,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://localhost:6379/0"
_TRANSIENT_REPLIES = ("BUSY", "LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS")


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


def resolve_url(url: str | None) -> str:
    """``url``, else ``$REDIS_URL``, else the local default."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_URL


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``: safe to print and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect(
    url: str,
    *,
    socket_timeout: float = 10.0,
    max_connections: int = 20,
    tls: TLSOptions | None = None,
    name: str = "asyncq",
) -> aioredis.Redis:
    """A client for ``url``: bytes replies, bounded timeouts, no hidden retries."""
    try:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=5.0,
            socket_keepalive=True,
            health_check_interval=15,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{name}-{socket.gethostname()}-{os.getpid()}",
            **(tls or TLSOptions()).kwargs(),
        )
    except ValueError as exc:
        raise RedisUnavailable(url, f"invalid URL ({exc})") from exc


def is_transient(exc: BaseException) -> bool:
    """True for failures that pass by themselves: lost connections, timeouts, a server loading or busy."""
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def describe(exc: BaseException) -> str:
    """A one-line reason for ``exc`` that never contains a password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return f"authentication failed ({text})"
    if "NOAUTH" in text or "WRONGPASS" in text:
        return f"authentication failed ({text})"
    return text


async def check_reachable(client: aioredis.Redis, url: str) -> None:
    """PING once; raise ``RedisUnavailable`` with a one-line reason when that fails.

    Also warns when ``maxmemory-policy`` would let Redis evict queue keys.
    """
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(url, describe(exc)) from exc
    try:
        reply: dict[Any, Any] = await client.config_get("maxmemory-policy")
        policy = reply.get(b"maxmemory-policy", b"")
    except RedisError:
        return  # CONFIG may be disabled (managed Redis); nothing to check then
    if policy and policy != b"noeviction":
        log.warning(
            "Redis maxmemory-policy is %s: under memory pressure Redis may evict queue keys "
            "(items, or heartbeats of live consumers); use noeviction",
            policy.decode(),
        )
