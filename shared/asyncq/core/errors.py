"""The exceptions asyncq raises besides those of redis-py and the builtins."""

from __future__ import annotations

from asyncq.core.connection import RedisUnavailable
from asyncq.core.envelope import BadEnvelope, ItemTooLarge


class QueueClosed(RuntimeError):
    """``get()`` on a queue that was closed, or stopped consuming (like asyncio's ``QueueShutDown``)."""


class Reject(Exception):
    """Raise from a handler to dead-letter the item at once, without retrying (a permanent failure)."""


__all__ = ["BadEnvelope", "ItemTooLarge", "QueueClosed", "RedisUnavailable", "Reject"]
