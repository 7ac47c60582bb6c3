"""asyncq's library: asyncio.Queue's producer/consumer contract across processes and machines, over Redis.

``import asyncq`` loads the library core only (redis-py); the CLIs' libraries (Typer, rich) load with the
CLIs, in ``asyncq.producer``, ``asyncq.consumer`` and ``asyncq.cli``.
"""

from pkgutil import extend_path

# The repository keeps asyncq.producer and asyncq.consumer in producer/ and consumer/: an editable install
# puts the three folders on sys.path, and this joins their asyncq/ folders into one package. (An installed
# wheel has them in one folder already.)
__path__ = extend_path(__path__, __name__)

from asyncq.core.connection import RedisUnavailable, TLSOptions
from asyncq.core.envelope import DeadLetter, ItemTooLarge, Message
from asyncq.core.errors import QueueClosed, Reject
from asyncq.core.queue import RedisQueue
from asyncq.core.retries import RetryPolicy
from asyncq.core.shards import QueueLayoutError
from asyncq.core.urls import redact

__all__ = [
    "DeadLetter",
    "ItemTooLarge",
    "Message",
    "QueueClosed",
    "QueueLayoutError",
    "RedisQueue",
    "RedisUnavailable",
    "Reject",
    "RetryPolicy",
    "TLSOptions",
    "redact",
]
