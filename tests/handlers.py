"""Handlers that consumer processes in the tests load with ``--handler tests.handlers:NAME``."""

from __future__ import annotations

from typing import Any

from asyncq import Reject

_failed_once: set[str] = set()


async def always_fail(item: Any) -> None:
    raise RuntimeError("always fails")


async def traced(item: Any) -> None:
    """``{"mode": "once", "data": X}`` fails on its first delivery only (this process), ``reject`` is refused
    for good (a dead letter); anything else succeeds."""
    mode = item.get("mode") if isinstance(item, dict) else None
    if mode == "once" and item["data"] not in _failed_once:
        _failed_once.add(item["data"])
        raise RuntimeError("fails on its first delivery")
    if mode == "reject":
        raise Reject("never")
