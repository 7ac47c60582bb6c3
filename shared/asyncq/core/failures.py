"""Telling Redis failures apart: "unreachable" (no answer), "refused but it will pass" (a failover, a slot
move, a server loading), and "refused" for good (a wrong password, NOPERM, WRONGTYPE, a script error).

Every loop of asyncq backs off through the first two and stops on the third; ``describe`` gives the one
line that says which, without a password or a script's sha.
"""

from __future__ import annotations

import re

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

# Error replies that pass by themselves: a server loading or busy, a failover or slot move under way.
_TRANSIENT_CODES = frozenset(
    ("BUSY", "LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "UNBLOCKED", "MOVED", "ASK")
)
_SCRIPT_SUFFIX = re.compile(r"\s*script: [0-9a-f]{40}.*$", re.DOTALL)


class NotReplicated(RedisError):
    """Fewer replicas than asked confirmed a write in time: it is sent again, since a failover now could lose
    it (the master may be cut off, or no longer the master)."""


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
    if isinstance(exc, ConnectionError | TimeoutError | OSError | NotReplicated):
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
    if isinstance(exc, NotReplicated):
        return text
    code = error_code(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    prefix = ""
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError) or (
        "NOAUTH" in text or "WRONGPASS" in text
    ):
        return f"authentication failed ({text})"
    if code == "NOPERM" or "can't run this command" in text:  # the latter: refused inside a script
        prefix = "permission denied by the server's ACL: "
    elif is_out_of_memory(exc):
        prefix = "out of memory: "
    return prefix + text
