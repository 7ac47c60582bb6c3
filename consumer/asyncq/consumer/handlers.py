"""What a consumer does with an item: the seed's random sleep by default, or a user's function."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Work:
    """Simulated work: sleep a random time between ``low`` and ``high`` seconds (like the seed's randsleep)."""

    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> Work:
        """``"0.5"`` or ``"0-1.5"``; ``ValueError`` otherwise."""
        low_text, sep, high_text = text.partition("-")
        try:
            low = float(low_text)
            high = float(high_text) if sep else low
        except ValueError:
            raise ValueError(f"expected SECONDS or MIN-MAX, got {text!r}") from None
        if low < 0 or high < low:
            raise ValueError(f"expected 0 <= MIN <= MAX, got {text!r}")
        return cls(low, high)

    async def __call__(self, item: Any) -> None:
        seconds = random.uniform(self.low, self.high)
        if seconds > 0:
            await asyncio.sleep(seconds)


def load(spec: str) -> Handler:
    """Import ``module:function``. A plain function runs in a thread so it cannot stall the heartbeat."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no function {attr!r}")
    if inspect.iscoroutinefunction(function):
        return function  # type: ignore[no-any-return]

    async def threaded(item: Any) -> None:
        await asyncio.to_thread(function, item)

    return threaded
