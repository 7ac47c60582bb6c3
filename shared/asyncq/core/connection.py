"""Connecting to Redis: clients from a URL, URL redaction, reachability checks, and the errors that mean "wait".

asyncq retries transient failures itself (``asyncq.core.backoff``), so redis-py's own retry is turned off: a
blind retry of a blocking command after a timeout is the race described in pitfall 1-2 of the design notes.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    ConnectionError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
    TimeoutError,
)

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://localhost:6379/0"
MIN_REDIS = (7, 0)  # script flags (allow-oom) need 7.0
# Error replies that pass by themselves: a server loading or busy, a failover or slot move under way.
_TRANSIENT_CODES = frozenset(
    ("BUSY", "LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "UNBLOCKED", "MOVED", "ASK")
)
# Query parameters that carry a secret (redis-py reads ``password`` from the query too); a value runs to the
# next "&", so an unencoded "#", "?" or "@" in it is hidden too.
_SECRET_QUERY = re.compile(r"([?&](?:password|pass|pwd|secret|token|sentinel_password)=)[^&]*", re.IGNORECASE)
_SCRIPT_SUFFIX = re.compile(r"\s*script: [0-9a-f]{40}.*$", re.DOTALL)


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
    """The URL with every password replaced by ``***``: safe to print and log.

    Works on the text rather than a URL parser, so that a password with an unencoded ``/``, ``#``, ``?`` or
    ``@`` (which parsers split in the wrong place) is hidden too; under doubt it hides more, never less.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _SECRET_QUERY.sub(r"\1***", url)
    # The userinfo ends at the last "@" before any secret query parameter (whose value may hold an "@").
    query = _SECRET_QUERY.search(rest)
    at = rest.rfind("@", 0, query.start() if query else len(rest))
    head = ""
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        # No colon: "redis://secret@host" is taken as a password by some clients; hide it whole.
        head = f"{user}:***@" if colon else "***@"
        rest = rest[at + 1 :]
    return f"{scheme}://{head}" + _SECRET_QUERY.sub(r"\1***", rest)


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


def blocking_client(client: aioredis.Redis, block_timeout: float) -> aioredis.Redis:
    """A client of one connection of its own, like ``client``, for a blocking pop of ``block_timeout``
    seconds: its socket timeout stays above the pop's server-side timeout (pitfall 1), and it never waits
    for a connection of the shared pool."""
    pool = client.connection_pool
    options = dict(pool.connection_kwargs)
    options["socket_timeout"] = block_timeout + 10.0
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **options),
        single_connection_client=True,
    )


def error_code(exc: BaseException) -> str:
    """The reply's error code (``READONLY``, ``NOPERM``, ...): redis-py strips it from the message of some
    replies and keeps it in ``status_code``."""
    if not isinstance(exc, RedisError):
        return ""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code).upper()
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() else ""


def is_transient(exc: BaseException) -> bool:
    """True for failures that pass by themselves: lost connections, timeouts, a server loading or busy, a
    failover or slot move under way. A refusal (wrong password, NOPERM, WRONGTYPE, a script error) is not."""
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    return isinstance(exc, ResponseError) and error_code(exc) in _TRANSIENT_CODES


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, OutOfMemoryError) or error_code(exc) == "OOM"


def is_unreachable(exc: BaseException) -> bool:
    """Redis did not answer (as opposed to answering with a refusal)."""
    if isinstance(exc, AuthenticationError | BusyLoadingError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def describe(exc: BaseException) -> str:
    """A one-line reason for ``exc`` that never contains a password nor a script's sha."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _SCRIPT_SUFFIX.sub("", text).rstrip(" .,")
    code = error_code(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return f"authentication failed ({text})"
    if "NOAUTH" in text or "WRONGPASS" in text:
        return f"authentication failed ({text})"
    if code == "NOPERM":
        return f"permission denied by the server's ACL: {text}"
    if is_out_of_memory(exc):
        return f"out of memory: {text}"
    return text


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
