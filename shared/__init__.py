"""asyncq's library: asyncio.Queue's producer/consumer contract across processes and machines, over Redis."""

from shared.connection import RedisUnavailable, TLSOptions, redact
from shared.envelope import DeadLetter, ItemTooLarge, Message
from shared.errors import QueueClosed, Reject
from shared.queue import RedisQueue

__all__ = [
    "DeadLetter",
    "ItemTooLarge",
    "Message",
    "QueueClosed",
    "RedisQueue",
    "RedisUnavailable",
    "Reject",
    "TLSOptions",
    "redact",
]
