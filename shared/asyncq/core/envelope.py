"""The message envelope and its JSON encoding. Never pickle: the queue is shared with other machines.

An envelope on the wire is one JSON object whose text begins with the attempts field, so that the Lua scripts
can raise it without re-encoding the payload (see ``asyncq.core.scripts``)::

    {"attempts":0,"id":"5f0c1b2a9e3d-00000001","enqueued_at":1732512345.123456,"payload":...}

With tracing on (``asyncq.tracing``), an optional last field carries the producer's W3C trace context:
``...,"payload":...,"trace":{"traceparent":"00-...","tracestate":"..."}}``; envelopes without it still decode.

A dead letter is a JSON object ``{"id", "reason", "failed_at", "consumer", "envelope"}`` where ``envelope`` is
the original text (decoded with replacement when it was not UTF-8).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_ITEM_BYTES = 1024 * 1024

_id_prefix = os.urandom(6).hex()
_id_counter = itertools.count(1)
# Built once: json.dumps() with options builds a new encoder per call, and json.loads() of bytes sniffs the
# encoding first; on the hot path that is about a microsecond per item each.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_from_json = json.JSONDecoder().decode
_FIELDS = frozenset(("attempts", "id", "enqueued_at", "payload"))
_BUMPABLE = re.compile(rb'\{"attempts":\d+,')  # what the Lua bump (lua/lib.lua) matches

# The trace context to store with a new item, given (queue name, item id); None stores none. Set only by
# asyncq.tracing.instrument(): without it encode() pays one global lookup and imports nothing.
TraceHook = Callable[[str, str], Mapping[str, str] | None]
trace_hook: TraceHook | None = None


class ItemTooLarge(ValueError):
    """An item whose envelope would exceed the queue's ``max_item_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"item of {size} bytes exceeds the limit of {limit} bytes (max_item_bytes)")
        self.size = size
        self.limit = limit


class BadEnvelope(ValueError):
    """A value in the queue that is not an asyncq envelope."""


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of an item: its payload and what the queue knows about it.

    ``raw`` is the exact text stored in Redis; acknowledgements refer to it. ``shard`` is the shard of the
    queue it came from (0 for an unsharded queue): its acknowledgement, retry or dead letter goes there.
    """

    id: str
    payload: Any
    enqueued_at: float
    attempts: int
    raw: bytes
    shard: int = 0
    trace: Mapping[str, str] | None = None  # the producer's W3C trace context, when it stored one

    @property
    def delivery(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, and so on."""
        return self.attempts + 1


def new_id() -> str:
    """A unique item id: a per-process random prefix and a counter (cheaper than uuid4)."""
    return f"{_id_prefix}-{next(_id_counter):08x}"


def encode(payload: Any, *, max_bytes: int = DEFAULT_MAX_ITEM_BYTES, attempts: int = 0, queue: str = "") -> bytes:
    """Encode ``payload`` in a new envelope (for queue ``queue``: the trace hook's span names it).

    Raises ``TypeError`` for a payload JSON cannot encode and ``ItemTooLarge`` past ``max_bytes``, both before
    anything reaches Redis.
    """
    try:
        body = _to_json(payload)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"queue items must be JSON-serialisable: {exc}") from exc
    except RecursionError:
        raise TypeError("queue items must be JSON-serialisable: nested too deeply") from None
    item_id = new_id()
    trace = "" if trace_hook is None else _trace_field(trace_hook(queue, item_id))
    raw = (
        f'{{"attempts":{attempts},"id":"{item_id}","enqueued_at":{time.time():.6f},"payload":{body}{trace}}}'
    ).encode()
    if len(raw) > max_bytes:
        raise ItemTooLarge(len(raw), max_bytes)
    return raw


def decode(raw: bytes, shard: int = 0) -> Message:
    """Decode an envelope read from Redis (from shard ``shard``); ``BadEnvelope`` says why a value is not one.

    There is no size limit here: ``max_item_bytes`` bounds what a producer puts, and an item a producer with
    a higher limit put is still an item to deliver.
    """
    try:
        data = _from_json(raw.decode())  # envelopes are UTF-8 (encode() writes them so)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEnvelope(f"not JSON: {exc}") from exc
    except RecursionError:
        raise BadEnvelope("JSON nested too deeply") from None
    if not isinstance(data, dict) or not data.keys() >= _FIELDS:
        raise BadEnvelope("JSON without the envelope fields attempts, id, enqueued_at, payload")
    attempts, item_id, enqueued_at = data["attempts"], data["id"], data["enqueued_at"]
    # type() rather than isinstance(): True is an int to Python, not an attempt count.
    if type(attempts) is not int or attempts < 0:
        raise BadEnvelope(f"envelope field attempts must be a count >= 0, not {attempts!r}")
    if type(item_id) is not str or not item_id:
        raise BadEnvelope(f"envelope field id must be a non-empty string, not {item_id!r}")
    if type(enqueued_at) not in (int, float):
        raise BadEnvelope(f"envelope field enqueued_at must be a number, not {enqueued_at!r}")
    if not _BUMPABLE.match(raw):
        # The Lua scripts raise attempts by editing this text: an envelope they could not edit (a space after
        # the colon, another field first) would never reach max_deliveries.
        raise BadEnvelope('envelope must begin with {"attempts":N, (no spaces), as asyncq writes it')
    return Message(item_id, data["payload"], float(enqueued_at), attempts, raw, shard, _trace(data.get("trace")))


def _trace_field(context: Mapping[str, str] | None) -> str:
    return f',"trace":{_to_json(dict(context))}' if context else ""


def _trace(value: Any) -> Mapping[str, str] | None:
    """The stored trace context, or None: a malformed one is dropped, never a reason to refuse the item."""
    if isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items()):
        return value
    return None


def reset_attempts(raw: bytes) -> bytes:
    """The envelope with its attempts set back to 0 (for a dead letter sent back to the queue)."""
    message = decode(raw)
    return raw.replace(f'{{"attempts":{message.attempts},'.encode(), b'{"attempts":0,', 1)


def dead_letter_record(raw: bytes, reason: str, consumer: str, item_id: str | None = None) -> bytes:
    """The JSON record stored in the dead-letter list for ``raw``."""
    record = {
        "id": item_id or new_id(),
        "reason": reason,
        "failed_at": time.time(),
        "consumer": consumer,
        "envelope": raw.decode("utf-8", errors="replace"),
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record read back from Redis."""

    id: str
    reason: str
    failed_at: float
    consumer: str
    envelope: str
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> DeadLetter:
        try:
            data = json.loads(raw)
            return cls(
                str(data["id"]),
                str(data["reason"]),
                float(data["failed_at"]),
                str(data.get("consumer", "")),
                str(data["envelope"]),
                raw,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadEnvelope(f"not a dead-letter record: {exc}") from exc
