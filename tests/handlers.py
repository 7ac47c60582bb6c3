"""Handlers that consumer processes in the tests load with ``--handler tests.handlers:NAME``."""

from __future__ import annotations

from typing import Any


async def always_fail(item: Any) -> None:
    raise RuntimeError("always fails")
