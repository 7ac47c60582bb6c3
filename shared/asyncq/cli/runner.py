"""How every CLI runs its one coroutine: a chosen event loop, and clean one-line failures (never a traceback)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from redis.exceptions import RedisError

from asyncq.cli import logs
from asyncq.core.closing import QueueShutDown
from asyncq.core.connection import RedisUnavailable
from asyncq.core.envelope import ItemTooLarge
from asyncq.core.failures import describe
from asyncq.core.shards import QueueKindError, QueueLayoutError
from asyncq.core.urls import redact
from asyncq.tools.embedded import NoRedisServer

T = TypeVar("T")
log = logging.getLogger(__name__)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr (a JSON record with --log-format json); return the Exit to raise."""
    if logs.current_format() is logs.LogFormat.json:
        logs.report(message, err=True, level=logging.ERROR)
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def start_tracing(service: str) -> None:
    """Tracing as the OTEL_* variables ask (``asyncq.tracing``); a setup that cannot be made is one line."""
    from asyncq import tracing

    try:
        tracing.setup_from_env(service)
    except tracing.TracingUnavailable as exc:
        raise fail(str(exc), code=2) from None


def run(main: Coroutine[Any, Any, T], *, url: str = "") -> T:
    """``asyncio.run(main)`` on uvloop where it is installed (a default dependency on Linux and macOS; it
    halves the event loop's share of each item), unless ``ASYNCQ_UVLOOP=0``; failures mapped to one line."""
    try:
        if os.environ.get("ASYNCQ_UVLOOP", "1") != "0":
            with contextlib.suppress(ImportError):
                import uvloop

                return uvloop.run(main)
        return asyncio.run(main)
    except RedisUnavailable as exc:
        raise fail(str(exc)) from None
    except QueueShutDown:
        raise fail("the queue is shut down: `asyncq reset NAME` opens it again") from None
    except (ItemTooLarge, NoRedisServer, QueueLayoutError, QueueKindError) as exc:
        raise fail(str(exc)) from None
    except (RedisError, OSError) as exc:
        where = f" at {redact(url)}" if url else ""
        raise fail(f"Redis{where} failed: {describe(exc)}") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
