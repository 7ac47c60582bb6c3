"""The message envelope and its encoding. Never pickle: the queue is shared with other machines.

An envelope on the wire is one line of six fields separated by ``|``, the payload's JSON text last::

    ~{attempts}|{id}|{enqueued_at}|{key}|{trace}|{payload}
    ~0|Xk3-_q9a1f|1b7c2y0q4z|||"the item"

``attempts`` is a decimal count (the Lua scripts raise it by editing the text, without touching the
payload); ``id`` is letters, digits, ``-`` and ``_``; ``enqueued_at`` is microseconds since the epoch in base
36; ``key`` is the idempotency key (``put(item, key=...)``) as the text of a JSON string without its quotes,
``|`` written ``\u007c``; ``trace`` (with ``asyncq.tracing``) is the producer's W3C trace context as a JSON
object, ``|`` escaped the same way. Both are empty when absent. A 30-byte payload makes a 59-byte envelope.

Envelopes written before 0.2 are JSON objects (``asyncq.core.legacy_envelope``); they still decode, and the
Lua scripts read and bump both forms, so a queue an older version wrote drains after an upgrade.

A dead letter is a JSON object ``{"id", "reason", "failed_at", "consumer", "envelope"}`` where ``envelope`` is
the original text (decoded with replacement when it was not UTF-8).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from asyncq.core.legacy_envelope import decode_legacy, is_trace, reset_legacy_attempts

DEFAULT_MAX_ITEM_BYTES = 1024 * 1024

# Ids: 48 random bits per process (8 characters) and a hex counter, e.g. "Xk3-_q9a1f".
_id_prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()
_id_counter = itertools.count(1)
_ID_TEXT = re.compile(rb"[A-Za-z0-9_.-]+")  # what the Lua item_id (lua/lib.lua) accepts
# Built once: json.dumps() with options builds a new encoder per call, and json.loads() of bytes sniffs the
# encoding first; on the hot path that is about a microsecond per item each.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_from_json = json.JSONDecoder().decode
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]  # base 36, two digits at a time
_high: tuple[int, str] = (-1, "")  # the last (microseconds // 36**4, its base-36 text): it changes every 1.7 s

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


class Message(NamedTuple):
    """One delivery of an item: its payload and what the queue knows about it. Immutable (a named tuple:
    built once per item on the hot path, where a frozen dataclass costs several times more).

    ``raw`` is the exact text stored in Redis. ``shard`` is the shard of the queue it came from (0 for an
    unsharded queue): its acknowledgement, retry or dead letter goes there. ``ref`` is how the consuming
    scripts know it in this consumer's processing hash (its id) or list (``#`` and its id; ``=`` and its
    text when the id is not one the scripts read): see ``asyncq.core.keys`` and lua/lib.lua's ``unhold``.
    """

    id: str
    payload: Any
    enqueued_at: float
    attempts: int
    raw: bytes
    shard: int = 0
    trace: Mapping[str, str] | None = None  # the producer's W3C trace context, when it stored one
    key: str | None = None  # the idempotency key it was put with, if any
    ref: bytes = b""

    @property
    def handle(self) -> bytes:
        """What the consuming scripts take for this item (``ref``; a Message made by hand: its text)."""
        return self.ref or b"=" + self.raw

    @property
    def delivery(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, and so on."""
        return self.attempts + 1


def new_id() -> str:
    """A unique item id: a per-process random prefix and a counter (cheaper than uuid4)."""
    return f"{_id_prefix}{next(_id_counter):x}"


def _now36() -> str:
    """Microseconds since the epoch in base 36 (10 digits), without a division loop per item."""
    global _high
    micros = int(time.time() * 1_000_000)
    high, low = divmod(micros, 1_679_616)  # 36**4
    if high != _high[0]:
        text, n = "", high
        while n:
            n, digit = divmod(n, 36)
            text = _DIGITS[digit] + text
        _high = (high, text)
    first, second = divmod(low, 1296)
    return _high[1] + _PAIRS[first] + _PAIRS[second]


def encode(
    payload: Any,
    *,
    max_bytes: int = DEFAULT_MAX_ITEM_BYTES,
    attempts: int = 0,
    queue: str = "",
    key: str | None = None,
) -> bytes:
    """Encode ``payload`` in a new envelope (for queue ``queue``: the trace hook's span names it), with the
    idempotency ``key`` if given.

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
    keyed = "" if key is None else key_text(key)
    raw = f"~{attempts}|{item_id}|{_now36()}|{keyed}|{trace}|{body}".encode()
    if len(raw) > max_bytes:
        raise ItemTooLarge(len(raw), max_bytes)
    return raw


def decode(raw: bytes, shard: int = 0, ref: bytes = b"") -> Message:
    """Decode an envelope read from Redis (from shard ``shard``, held in the processing hash as ``ref``, or,
    without one, in the processing list); ``BadEnvelope`` says why a value is not one.

    There is no size limit here: ``max_item_bytes`` bounds what a producer puts, and an item a producer with
    a higher limit put is still an item to deliver.
    """
    if raw[:1] != b"~":
        try:
            old = decode_legacy(raw)
        except ValueError as exc:
            raise BadEnvelope(str(exc)) from None
        trace = is_trace(old.trace)
        if not ref:
            ref = b"#" + old.item_id.encode() if _ID_TEXT.fullmatch(old.item_id.encode()) else b"=" + raw
        return Message(old.item_id, old.payload, old.enqueued_at, old.attempts, raw, shard, trace, old.key, ref)
    fields = raw.split(b"|", 5)
    if len(fields) != 6:
        raise BadEnvelope("envelope without its six |-separated fields")
    attempts, item_id, enqueued, key, trace_text, body = fields
    if not attempts[1:].isdigit():
        raise BadEnvelope(f"envelope field attempts must be a count >= 0, not {attempts[1:]!r}")
    if (not ref or item_id != ref) and not _ID_TEXT.fullmatch(item_id):  # a ref: an id the Lua item_id took
        raise BadEnvelope(f"envelope field id must be letters, digits, '-', '_' or '.', not {item_id!r}")
    try:
        enqueued_at = int(enqueued, 36) / 1_000_000
        payload = _payload(body)
        trace = is_trace(_from_json(trace_text.decode())) if trace_text else None
        keyed = _from_json(f'"{key.decode()}"') if key else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEnvelope(f"not an envelope: {exc}") from exc
    except RecursionError:
        raise BadEnvelope("JSON nested too deeply") from None
    ref = ref or b"#" + item_id
    return Message(item_id.decode(), payload, enqueued_at, int(attempts[1:]), raw, shard, trace, keyed, ref)


_LUA_ID = re.compile(rb'~\d+\|([A-Za-z0-9_.-]+)\||\{"attempts":\d+,"id":"([A-Za-z0-9_.-]+)"')


def listed_id(raw: bytes) -> bytes | None:
    """The id the Lua ``item_id`` reads in ``raw`` (either form), or None."""
    match = _LUA_ID.match(raw)
    return None if match is None else match.group(1) or match.group(2)


def _payload(body: bytes) -> Any:
    """The payload's JSON text decoded: orjson (7x faster on small items), or the standard library for what
    orjson refuses and it reads (integers past 64 bits, NaN, nesting past 1,024 levels)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _from_json(body.decode())


def key_text(key: str) -> str:
    """An idempotency key as the envelope and the keys hash hold it: its JSON string text without the
    quotes, ``|`` escaped (the Lua scripts compare this text)."""
    return _to_json(key)[1:-1].replace("|", "\\u007c")


def _trace_field(context: Mapping[str, str] | None) -> str:
    return _to_json(dict(context)).replace("|", "\\u007c") if context else ""


def reset_attempts(raw: bytes) -> bytes:
    """The envelope with its attempts set back to 0 (for a dead letter sent back to the queue)."""
    message = decode(raw)
    if raw[:1] != b"~":
        return reset_legacy_attempts(raw, message.attempts)
    return b"~0" + raw[1 + len(str(message.attempts)) :]


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
