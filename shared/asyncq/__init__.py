"""asyncq's library: asyncio.Queue's producer/consumer contract across processes and machines, over Redis.

``import asyncq`` loads the library core only (redis-py); the CLIs' libraries (Typer, rich) load with the
CLIs, in ``asyncq.producer``, ``asyncq.consumer`` and ``asyncq.cli``.
"""

from pkgutil import extend_path

# The repository keeps asyncq.producer and asyncq.consumer in producer/ and consumer/: an editable install
# puts the three folders on sys.path, and this joins their asyncq/ folders into one package. (An installed
# wheel has them in one folder already.)
__path__ = extend_path(__path__, __name__)

from asyncio import QueueEmpty, QueueFull

from asyncq.core.closing import QueueShutDown
from asyncq.core.codec import Codec, JsonCodec, PydanticCodec
from asyncq.core.connection import RedisUnavailable, TLSOptions
from asyncq.core.envelope import DeadLetter, ItemTooLarge, Message
from asyncq.core.errors import QueueClosed, Reject
from asyncq.core.kinds import RedisLifoQueue, RedisPriorityQueue
from asyncq.core.queue import RedisQueue
from asyncq.core.retries import RetryPolicy
from asyncq.core.shards import QueueKindError, QueueLayoutError
from asyncq.core.urls import redact

__all__ = [
    "Codec",
    "DeadLetter",
    "ItemTooLarge",
    "JsonCodec",
    "Message",
    "PydanticCodec",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "QueueKindError",
    "QueueLayoutError",
    "QueueShutDown",
    "RedisLifoQueue",
    "RedisPriorityQueue",
    "RedisQueue",
    "RedisUnavailable",
    "Reject",
    "RetryPolicy",
    "TLSOptions",
    "redact",
]
