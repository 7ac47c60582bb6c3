"""Handlers for the issue-9 reliability tests, loaded by real consumer processes with
``--handler tests.rel_handlers:NAME``. Like ``tests.fault_handlers`` they record in Redis (``FAULT_RECORD_URL``,
default ``REDIS_URL``; prefix ``FAULT_RECORD_KEY``, default ``fault``):

- ``<prefix>:counts`` hash: ``data`` -> calls completed successfully;
- ``<prefix>:calls`` list: one JSON ``{"data", "pid", "t"}`` per call, at its start (``t``: wall clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from tests.fault_handlers import _data, _prefix, _redis


class HandlerBaseError(BaseException):
    """A BaseException that is neither an Exception nor one of the interpreter's own."""


async def _started(data: str) -> None:
    call = json.dumps({"data": data, "pid": os.getpid(), "t": time.time()})
    await _redis().rpush(f"{_prefix()}:calls", call)


async def _done(data: str) -> None:
    await _redis().hincrby(f"{_prefix()}:counts", data, 1)


async def timed(item: Any) -> None:
    """Log (item, pid, start time), sleep the item's ``work`` seconds (else ``FAULT_WORK``), count it done."""
    data = _data(item)
    await _started(data)
    work = item.get("work") if isinstance(item, dict) else None
    await asyncio.sleep(float(work if work is not None else os.environ.get("FAULT_WORK", "0")))
    await _done(data)


_RAISES: dict[str, type[BaseException]] = {
    "cancel": asyncio.CancelledError,
    "base": HandlerBaseError,
    "exit": SystemExit,
    "interrupt": KeyboardInterrupt,
}


async def raising(item: Any) -> None:
    """Raise what the item's ``raise`` names (``cancel``, ``base``, ``exit``, ``interrupt``) though nobody
    cancelled or interrupted the worker; any other item is counted done."""
    data = _data(item)
    await _started(data)
    kind = item.get("raise") if isinstance(item, dict) else None
    if kind in _RAISES:
        raise _RAISES[kind](f"handler raised {kind} for {data}")
    await _done(data)


async def blocking(item: Any) -> None:
    """Block the event loop (``time.sleep`` inside ``async def``) for the item's ``block`` seconds."""
    data = _data(item)
    await _started(data)
    if isinstance(item, dict) and item.get("block"):
        time.sleep(float(item["block"]))  # the point of this handler: a loop that does not await
    await _done(data)
