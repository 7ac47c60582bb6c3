"""Handlers of every shape that returns a coroutine, for ``consumer --handler tests.shape_handlers:NAME``.

Each one records the item through ``tests.fault_handlers.record`` (a count per item in Redis), so a test can
tell an item handled from one acknowledged with its coroutine thrown away (issue 9, item 2).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fault_handlers import record


class Recorder:
    """An object whose ``__call__`` is a coroutine function: ``inspect.iscoroutinefunction`` says no."""

    async def __call__(self, item: Any) -> None:
        await record(item)


async_call_object = Recorder()


def _without_wraps(function: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    def wrapper(item: Any) -> Awaitable[None]:  # a plain def that returns the coroutine
        return function(item)

    return wrapper


@_without_wraps
async def decorated_without_wraps(item: Any) -> None:
    await record(item)


async def _record_tagged(item: Any, tag: str) -> None:
    await record(item)


partial_of_coroutine = functools.partial(_record_tagged, tag="partial")


def takes_two(item: Any, other: Any) -> None:
    """Cannot be called with one item."""
