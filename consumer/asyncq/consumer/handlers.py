"""What a consumer does with an item: the seed's random sleep by default, or a user's function."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import os
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Work:
    """Simulated work: sleep a random time between ``low`` and ``high`` seconds (like the seed's randsleep)."""

    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> Work:
        """``"0.5"`` (or ``"1e-3"``) or ``"0-1.5"``; ``ValueError`` otherwise."""
        try:
            low = high = float(text)
        except ValueError:
            low_text, _, high_text = text.partition("-")
        else:
            return cls._checked(low, high, text)
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise ValueError(f"expected SECONDS or MIN-MAX, got {text!r}") from None
        return cls._checked(low, high, text)

    @classmethod
    def _checked(cls, low: float, high: float, text: str) -> Work:
        if not 0 <= low <= high:
            raise ValueError(f"expected 0 <= MIN <= MAX, got {text!r}")
        return cls(low, high)

    async def __call__(self, item: Any) -> None:
        seconds = random.uniform(self.low, self.high)
        if seconds > 0:
            await asyncio.sleep(seconds)


def load(spec: str) -> Handler:
    """Import ``module:function`` and check that it can be called with one item; ``ValueError`` if not.

    The module is looked up in the current directory first, as rq and Celery do (``consumer --handler
    jobs:handle`` next to ``jobs.py``), and then on the usual path. A coroutine function, a
    ``functools.partial`` of one and an object with an ``async def __call__`` run on the event loop; any
    other callable runs in a thread (so it cannot stall the heartbeat), and if it returns an awaitable (a
    decorator without ``functools.wraps`` around a coroutine function), that is awaited on the loop.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:function, got {spec!r}")
    module = _import(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no function {attr!r}")
    _check_signature(spec, function)
    if is_async(function):
        return function  # type: ignore[no-any-return]

    async def threaded(item: Any) -> None:
        result = await asyncio.to_thread(function, item)
        if inspect.isawaitable(result):
            await result

    return threaded


def is_async(function: Callable[..., Any]) -> bool:
    """Does calling ``function`` give a coroutine, as far as its definition tells?"""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isroutine(function) or inspect.isclass(function):
        return False
    return inspect.iscoroutinefunction(type(function).__call__)  # an object with async def __call__


def _import(name: str) -> ModuleType:
    # The current directory stays first on the path, as rq and Celery do: a handler module that imports its
    # siblings later (inside a function) finds them too.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"cannot import {name!r} (looked in {cwd} first): {exc}") from None
    except Exception as exc:  # the module itself fails (a SyntaxError, an error at import): one line, no traceback
        raise ValueError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from None


def _check_signature(spec: str, function: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # some builtins do not say: let the first call tell
    try:
        signature.bind(None)
    except TypeError:
        bare = signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty,
        )
        raise ValueError(
            f"{spec} cannot be called with one item: its signature is {bare} "
            "(it must accept one positional argument: the item)"
        ) from None
