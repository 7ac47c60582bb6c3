"""Redis URLs: the default, redaction (a password is never printed), and the high-availability forms.

=============================================================================  ===============================
URL                                                                            what it reaches
=============================================================================  ===============================
``redis://[[user]:password@]host:port/db``, ``rediss://...``, ``unix://path``  one server (redis-py's forms)
``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``   the master of ``service``, found
(``rediss+sentinel://`` for TLS; ``?sentinel_password=`` if the sentinels      through the sentinels, and found
need one of their own)                                                         again after a failover
``redis+cluster://[[user]:password@]host:port[,host:port...]``                 a Redis Cluster, through any of
(``rediss+cluster://`` for TLS)                                                the nodes listed
=============================================================================  ===============================

A password in a URL must be percent-encoded where it holds ``@``, ``:``, ``/``, ``?`` or ``#``; redaction
hides it even where it is not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

DEFAULT_URL = "redis://localhost:6379/0"
HA_SCHEMES = ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")

# Query parameters that carry a secret (redis-py reads ``password`` from the query too); a value runs to the
# next "&", so an unencoded "#", "?" or "@" in it is hidden too.
_SECRET_QUERY = re.compile(r"([?&](?:password|pass|pwd|secret|token|sentinel_password)=)[^&]*", re.IGNORECASE)


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


@dataclass(frozen=True)
class HAUrl:
    """A ``redis+sentinel://`` or ``redis+cluster://`` URL, taken apart."""

    kind: str  # "sentinel" or "cluster"
    tls: bool
    hosts: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None
    service: str = ""
    db: int = 0
    query: dict[str, str] = field(default_factory=dict)


def parse_ha(url: str) -> HAUrl | None:
    """The parts of a Sentinel or Cluster URL; None for any other URL. ``ValueError`` says what is wrong."""
    scheme, _, rest = url.partition("://")
    if scheme not in HA_SCHEMES:
        return None
    kind = scheme.split("+", 1)[1]
    rest, _, query_text = rest.partition("?")
    userinfo, at, rest = rest.rpartition("@")
    if not at:
        userinfo = ""
    hostlist, _, path = rest.partition("/")
    username, password = None, None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else unquote(user)
        if not colon:
            username = None
    hosts = [_host_port(part, 26379 if kind == "sentinel" else 6379) for part in hostlist.split(",") if part]
    if not hosts:
        raise ValueError(f"{scheme} URL without a host")
    parts = [unquote(p) for p in path.split("/") if p]
    service, db = "", 0
    if kind == "sentinel":
        if not parts:
            raise ValueError("a sentinel URL names the service: redis+sentinel://host:port,.../SERVICE[/DB]")
        service = parts[0]
        db = int(parts[1]) if len(parts) > 1 else 0
    elif parts and parts != ["0"]:
        raise ValueError("a cluster has only database 0")
    query = dict(parse_qsl(query_text))
    return HAUrl(kind, scheme.startswith("rediss"), hosts, username, password, service, db, query)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"invalid port in {text!r}") from None
